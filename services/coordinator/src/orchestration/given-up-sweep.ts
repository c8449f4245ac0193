import { Inject, Injectable } from '@nestjs/common';
import { givenUpOf, givenUpResult, type ExecJob, type ResultMessage } from '@podflow/protocol';
import { LuaScript, type RedisClient } from '@podflow/redis';
import { Job, type Queue } from 'bullmq';
import type { Logger } from 'pino';
import { EXEC_QUEUE, LOGGER, REDIS, RESULTS_QUEUE } from '../tokens';
import { Orchestrator, isUnapplicable } from './orchestrator.service';

/** A failed job is looked at once its worker had this long to report it itself. */
export const GIVEN_UP_GRACE_MS = 30_000;
/** Failed jobs read per page, and at most per pass. */
const PAGE = 100;
const MAX_PER_PASS = 1000;

/**
 * Sets the cursor only forward. KEYS: cursor. ARGV: score. Concurrent passes of several
 * coordinators may read the same jobs; a cursor that went back would only repeat no-ops.
 */
const ADVANCE = new LuaScript(`
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
`);

/**
 * The safety net under the worker's own report of an execution the queue gave up on (the exec
 * worker's `failed` event, worker.ts `reportGivenUp`). A worker that dies between BullMQ failing
 * the job and its report being stored, or whose report Redis refuses, would leave the run waiting
 * for RUN_TIMEOUT. So every few sweeps a coordinator reads exec's failed set (BullMQ scores it by
 * the time the job failed, on the worker's clock) past a cursor, for jobs that failed at least
 * GIVEN_UP_GRACE_MS before Redis's own time, and queues the same SANDBOX_LOST result for each on
 * `results` (`given-up.<execution>`): behind any result of that execution still queued there, and
 * handled like one (in-flight counts, usage). Either report is enough: the
 * engine ignores a result for an execution its node no longer waits for, so the worker's report
 * arriving first, several coordinators reading one page, or a crash before the cursor moved only
 * repeat a no-op. A job that cannot be reported (Redis failing) ends the pass with the cursor
 * before it, so the next pass tries it again; one whose data cannot be read is logged and skipped.
 * A deployment's first pass starts its cursor at that moment (older failures were handled by
 * their workers or have long timed out).
 */
@Injectable()
export class GivenUpSweep {
  constructor(
    private readonly orchestrator: Orchestrator,
    @Inject(EXEC_QUEUE) private readonly execQueue: Queue<ExecJob>,
    @Inject(RESULTS_QUEUE) private readonly resultsQueue: Queue<ResultMessage>,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  private get cursorKey(): string {
    // In the exec queue's hash slot, next to the set it walks.
    return `${this.execQueue.keys.failed}:given-up-cursor`;
  }

  /** One pass: reports the jobs failed in (cursor, now - grace], `now` being Redis's time; returns how many it queued reports for. */
  async sweep(now?: number): Promise<number> {
    now ??= await this.redisTime();
    const until = now - GIVEN_UP_GRACE_MS;
    const stored = await this.redis.get(this.cursorKey);
    if (stored === null) {
      await ADVANCE.run(this.redis, [this.cursorKey], [until]);
      return 0;
    }
    const cursor = Number(stored);
    // Up to MAX_PER_PASS jobs, and then the rest of the last millisecond read (jobs failed in one
    // millisecond share a score), so the cursor can move past every score it read.
    const read: Array<{ jobId: string; score: number }> = [];
    let capped = false;
    for (let offset = 0; !capped; offset += PAGE) {
      const page = await this.redis.zrangebyscore(this.execQueue.keys.failed, `(${cursor}`, until, 'WITHSCORES', 'LIMIT', offset, PAGE);
      for (let i = 0; i < page.length && !capped; i += 2) {
        const entry = { jobId: page[i]!, score: Number(page[i + 1]) };
        capped = read.length >= MAX_PER_PASS && entry.score > read[read.length - 1]!.score;
        if (!capped) read.push(entry);
      }
      if (page.length < 2 * PAGE) break;
    }
    let reported = 0;
    let next = capped ? read[read.length - 1]!.score : until;
    for (const { jobId, score } of read) {
      try {
        if (await this.report(jobId, now)) reported += 1;
      } catch (error) {
        if (isUnapplicable(error)) {
          // Bad data fails the same way every time: left behind, logged, not retried forever.
          this.logger.error({ err: error, jobId }, 'a failed exec job that cannot be read was skipped by the given-up sweep');
          continue;
        }
        this.logger.error({ err: error, jobId }, 'could not report an execution the queue gave up on; the next sweep tries again');
        next = score - 1; // scores are whole milliseconds: the cursor stays before this job
        break;
      }
    }
    if (next > cursor) await ADVANCE.run(this.redis, [this.cursorKey], [next]);
    // Most were reported by their workers already; those reports make these no-ops.
    if (reported > 0) this.logger.info({ reported }, 'executions the queue gave up on reported by the sweep');
    return reported;
  }

  /** Queues the given-up result of one failed job; false when the job is gone or holds no execution. */
  private async report(jobId: string, now: number): Promise<boolean> {
    const job = await Job.fromId<ExecJob>(this.execQueue, jobId);
    const exec = job?.data;
    if (!job || typeof exec?.runId !== 'string' || typeof exec.executionId !== 'string') return false;
    const message: ResultMessage = { kind: 'finished', result: givenUpResult(exec, givenUpOf(job, job.failedReason || 'failed'), `coordinator ${this.orchestrator.token}`, now) };
    // Its own id: the worker's report (`finished.<execution>`) may sit in the failed set for days, and would swallow this one.
    await this.resultsQueue.add(message.kind, message, { jobId: `given-up.${exec.executionId}`, attempts: 10, backoff: { type: 'exponential', delay: 200 }, removeOnComplete: true, removeOnFail: { age: 7 * 24 * 3600 } });
    return true;
  }

  private async redisTime(): Promise<number> {
    const [seconds, micros] = await this.redis.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }
}
