import { Inject, Injectable } from '@nestjs/common';
import { canceledSetKey, cancelChannel, resultJobId, type ExecJob, type ResultMessage } from '@podflow/protocol';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { CoordinatorConfig } from '../config';
import { CONFIG, EXEC_QUEUE, REDIS, RESULTS_QUEUE } from '../tokens';
import type { OutboxCommand } from './run-store';

/** How long an execution id stays in the canceled set (a worker checks it before starting). */
const CANCELED_TTL_SECONDS = 24 * 3600;

/**
 * Carries out engine commands. Every command is idempotent (job ids are deterministic), because
 * an outbox may be carried out twice: by a coordinator that died before acknowledging it, and by
 * the sweeper or the next transition that finds it again.
 */
@Injectable()
export class OutboxExecutor {
  constructor(
    @Inject(EXEC_QUEUE) private readonly execQueue: Queue<ExecJob>,
    @Inject(RESULTS_QUEUE) private readonly resultsQueue: Queue<ResultMessage>,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  async execute(runId: string, command: OutboxCommand, now: number): Promise<void> {
    switch (command.type) {
      case 'enqueue':
        await this.execQueue.add('exec', command.job, {
          jobId: command.job.executionId,
          delay: command.delayMs,
          // Kept for an hour so that a replayed enqueue finds the job and does not run it twice.
          removeOnComplete: { age: 3600, count: 100_000 },
          removeOnFail: { age: 7 * 24 * 3600 },
          attempts: 3,
          backoff: { type: 'exponential', delay: 1000 },
        });
        return;
      case 'cancel_execution':
        await this.cancelExecution(command.executionId);
        return;
      case 'schedule_run_timeout': {
        const message: ResultMessage = { kind: 'run_timeout', runId, at: command.at };
        await this.resultsQueue.add('run_timeout', message, {
          jobId: resultJobId(message),
          delay: Math.max(0, command.at - now),
          removeOnComplete: true,
          removeOnFail: { age: 24 * 3600 },
        });
        return;
      }
    }
  }

  private async cancelExecution(executionId: string): Promise<void> {
    const setKey = canceledSetKey(this.config.QUEUE_PREFIX);
    await this.redis.multi().sadd(setKey, executionId).expire(setKey, CANCELED_TTL_SECONDS).publish(cancelChannel(this.config.QUEUE_PREFIX), executionId).exec();
    // A job that has not started yet is simply removed; a running one is killed by its worker.
    const job = await this.execQueue.getJob(executionId);
    if (job && ((await job.isWaiting()) || (await job.isDelayed()))) {
      await job.remove().catch(() => undefined);
    }
  }
}
