import { Inject, Injectable } from '@nestjs/common';
import { canceledSetKey, cancelChannel, resultJobId, type ExecJob, type ResultMessage } from '@podflow/protocol';
import type { Queue } from 'bullmq';
import type { RedisClient } from '@podflow/redis';
import type { CoordinatorConfig } from '../config';
import { CONFIG, EXEC_QUEUE, REDIS, RESULTS_QUEUE } from '../tokens';
import { RunNotifier } from '../notify/run-notifier';
import { Admission, type AdmissionRequest } from './admission';
import type { OutboxEntry } from './run-store';

/** Job states of an execution no worker has taken yet: a cancel removes the job. */
const NOT_STARTED = new Set(['waiting', 'prioritized', 'delayed']);

/** Most executions admitted in one admission and added in one `addBulk` (during either, Redis serves no one else). */
export const ENQUEUE_CHUNK = 250;

/**
 * Executions canceled at once: each takes a few round trips (canceled set, publish, job lookup and
 * removal, in-flight count), sent together for a chunk. One by one, canceling a 10,000-node run
 * held its cancel request for 7.5 s.
 */
export const CANCEL_CHUNK = 250;

/** How long an execution id stays in the canceled set (a worker checks it before starting). */
const CANCELED_TTL_SECONDS = 24 * 3600;

/** Options of every exec job. Completed jobs are kept for an hour so a replayed enqueue finds the job and does not run it twice. */
const EXEC_JOB_OPTIONS = {
  removeOnComplete: { age: 3600, count: 100_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
  attempts: 3,
  backoff: { type: 'exponential', delay: 1000 },
} as const;

/**
 * Carries out outbox commands. Every command is idempotent (job ids are deterministic), because
 * an outbox entry may be carried out twice: by a coordinator that died before acknowledging it,
 * and by the next owner of the run that finds it again. Ready executions pass admission first
 * and go onto `exec` in `addBulk`s of at most ENQUEUE_CHUNK; the ones admission holds stay in the outbox.
 */
@Injectable()
export class OutboxExecutor {
  constructor(
    @Inject(EXEC_QUEUE) private readonly execQueue: Queue<ExecJob>,
    @Inject(RESULTS_QUEUE) private readonly resultsQueue: Queue<ResultMessage>,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    private readonly admission: Admission,
    private readonly notifier: RunNotifier,
  ) {}

  /**
   * Carries out `entries`: enqueues in order as far as admission allows, cancels a chunk at a time,
   * and the run's completion (`run_finished`) once its cancels are done. Returns the ids carried
   * out, how many enqueues admission held back, and the tenant of the enqueues (when there were any).
   */
  async execute(runId: string, entries: readonly OutboxEntry[], now: number, releasing = false, runOver = false): Promise<{ done: string[]; held: number; tenantId?: string }> {
    const done: string[] = [];
    // Enqueues of a run that has ended (held by admission, then canceled or failed) or is ending (a
    // page at a time: `runOver`) are moot: its nodes were or will be canceled, so they are
    // acknowledged without taking admission's room.
    const over = runOver || entries.some((entry) => entry.command.type === 'run_finished');
    const enqueues: Array<{ id: string; request: AdmissionRequest }> = [];
    const cancels: Array<{ id: string; executionId: string }> = [];
    const finished: string[] = [];
    // Run timeouts are delayed jobs of their own: scheduled alongside the enqueues, not before
    // them, so a new run's first executions do not wait for a round trip they do not need.
    const timeouts: Promise<unknown>[] = [];
    for (const { id, command } of entries) {
      switch (command.type) {
        case 'enqueue':
          if (over) break;
          enqueues.push({ id, request: { job: command.job, delayMs: command.delayMs } });
          continue;
        case 'cancel_execution':
          cancels.push({ id, executionId: command.executionId });
          continue;
        case 'run_finished':
          // After the cancels, as in outbox order: the run's completion goes out once its executions are stopped.
          finished.push(id);
          continue;
        case 'schedule_run_timeout': {
          const message: ResultMessage = { kind: 'run_timeout', runId, at: command.at };
          timeouts.push(this.resultsQueue.add('run_timeout', message, { jobId: resultJobId(message), delay: Math.max(0, command.at - now), removeOnComplete: true, removeOnFail: { age: 24 * 3600 } }));
          break;
        }
        default:
          // Not a command this version knows (a corrupt entry): acknowledged so it cannot block the outbox.
          break;
      }
      done.push(id);
    }
    // Admitted and added a chunk at a time: one admission is one Lua script and one addBulk one
    // MULTI, and Redis serves no one else while either runs (~30 µs a job each: one fan-out of
    // 10,000 held every tenant up for ~0.3 s). Each chunk is a batch of its own for admission; the
    // first one admission cuts short ends the run's enqueues here (the rest stay in the outbox). A
    // crash between chunks leaves the entries in the outbox, and enqueues are idempotent.
    const enqueued = (async () => {
      let admittedTotal = 0;
      for (let first = 0; first < enqueues.length; first += ENQUEUE_CHUNK) {
        const chunk = enqueues.slice(first, first + ENQUEUE_CHUNK);
        const { admitted, priorities, added } = await this.admission.admit(chunk.map((e) => e.request), releasing);
        if (admitted > 0) {
          await this.execQueue.addBulk(
            chunk.slice(0, admitted).map(({ request }, i) => ({
              name: 'exec',
              data: request.job,
              opts: { ...EXEC_JOB_OPTIONS, jobId: request.job.executionId, delay: request.delayMs, ...(priorities ? { priority: priorities[i] } : {}) },
            })),
          );
          // Best effort: a batch left behind stops counting after a second anyway (DispatchStore).
          void added?.().catch(() => undefined);
        }
        admittedTotal += admitted;
        if (admitted < chunk.length) break;
      }
      return admittedTotal;
    })();
    // All settle before anything is acknowledged: a failure leaves every entry in the outbox.
    const [admitted] = await Promise.all([enqueued, this.cancelExecutions(cancels.map((c) => c.executionId)), ...timeouts]);
    if (finished.length > 0) await this.notifier.runFinished(runId);
    done.push(...cancels.map((c) => c.id), ...finished, ...enqueues.slice(0, admitted).map((e) => e.id));
    return { done, held: enqueues.length - admitted, ...(enqueues.length > 0 ? { tenantId: enqueues[0]!.request.job.tenantId } : {}) };
  }

  /**
   * Cancels executions, CANCEL_CHUNK at a time (the commands of one chunk go out together). Each
   * goes into the canceled set (a worker that takes its job later skips it) before running
   * workers hear of it; a job no worker has taken is removed, a running one is killed by its
   * worker. A canceled execution reports no result, so it stops counting against its tenant now,
   * not at the next reconcile (one still running may overlap with the next admission for the
   * moment its worker takes to kill it). Idempotent: a command carried out twice does nothing new.
   */
  private async cancelExecutions(executionIds: readonly string[]): Promise<void> {
    const setKey = canceledSetKey(this.config.QUEUE_PREFIX);
    const channel = cancelChannel(this.config.QUEUE_PREFIX);
    for (let first = 0; first < executionIds.length; first += CANCEL_CHUNK) {
      const chunk = executionIds.slice(first, first + CANCEL_CHUNK);
      await this.redis.multi().sadd(setKey, ...chunk).expire(setKey, CANCELED_TTL_SECONDS).exec();
      const byTenant = new Map<string, string[]>();
      const outcomes = await Promise.allSettled(
        chunk.map(async (executionId) => {
          await this.redis.publish(channel, executionId);
          const job = await this.execQueue.getJob(executionId);
          if (!job) return;
          // Counted out even if its removal below fails: a retry would not find a job removed meanwhile.
          const ids = byTenant.get(job.data.tenantId) ?? [];
          ids.push(executionId);
          byTenant.set(job.data.tenantId, ids);
          // Prioritized: waiting under fair dispatch (every job has a priority then).
          if (NOT_STARTED.has(await job.getState())) await job.remove().catch(() => undefined);
        }),
      );
      await Promise.all([...byTenant].map(([tenantId, ids]) => this.admission.store.finished(tenantId, ids)));
      // Nothing is acknowledged then: the commands are carried out again (each is idempotent).
      const failed = outcomes.find((outcome) => outcome.status === 'rejected');
      if (failed) throw failed.reason;
    }
  }
}
