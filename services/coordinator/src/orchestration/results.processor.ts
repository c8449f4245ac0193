import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { QUEUE_NAMES, type ResultMessage } from '@podflow/protocol';
import type { EngineEvent } from '@podflow/workflow';
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { CONFIG, LOGGER, REDIS } from '../tokens';
import { Orchestrator } from './orchestrator.service';

/** Turns a message from the durable `results` queue into the engine event it stands for. */
export function eventOf(message: ResultMessage): { runId: string; event: EngineEvent } {
  switch (message.kind) {
    case 'started':
      return { runId: message.runId, event: { type: 'node_started', nodeId: message.nodeId, executionId: message.executionId, at: message.at } };
    case 'finished':
      return { runId: message.result.runId, event: { type: 'node_finished', result: message.result, at: message.result.timings.finishedAt } };
    case 'run_timeout':
      return { runId: message.runId, event: { type: 'run_timeout', at: message.at } };
  }
}

/** Errors that come back on every delivery of the same message: bad data, not a failing service. */
function isUnapplicable(error: unknown): boolean {
  return error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError;
}

function subjectOf(message: ResultMessage): string {
  switch (message.kind) {
    case 'started':
      return `the start of execution ${message.executionId}`;
    case 'finished':
      return `the result of execution ${message.result.executionId}`;
    case 'run_timeout':
      return 'its timeout';
  }
}

/**
 * Consumes `results`. A job is completed only after its transition is stored and its commands
 * carried out; if this process dies in between, BullMQ redelivers the job and the engine's
 * idempotency makes the second delivery harmless.
 */
@Injectable()
export class ResultsProcessor implements OnApplicationBootstrap, OnApplicationShutdown {
  private worker?: Worker<ResultMessage>;

  constructor(
    private readonly orchestrator: Orchestrator,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.worker = new Worker<ResultMessage>(
      QUEUE_NAMES.results,
      (job) => this.process(job),
      { connection: this.redis, prefix: this.config.QUEUE_PREFIX, concurrency: this.config.RESULTS_CONCURRENCY },
    );
    this.worker.on('failed', (job, error) => this.logger.error({ err: error, jobId: job?.id }, 'result not applied; it will be retried'));
    this.worker.on('error', (error) => this.logger.error({ err: error }, 'results worker error'));
    await this.worker.waitUntilReady();
  }

  /**
   * Applies one result. One that cannot be applied (the same error would come back on every
   * delivery: a TypeError, RangeError or SyntaxError from malformed data), or that failed on its
   * last delivery, fails its run with INTERNAL at once: retried, it would only leave the run
   * waiting for RUN_TIMEOUT. Other errors (Redis, the object store) are retried by BullMQ.
   */
  private async process(job: Job<ResultMessage>): Promise<void> {
    let runId: string;
    let event: EngineEvent;
    try {
      ({ runId, event } = eventOf(job.data));
    } catch (error) {
      this.logger.error({ err: error, jobId: job.id }, 'result message cannot be read; dropped');
      return;
    }
    try {
      await this.orchestrator.apply(runId, event);
    } catch (error) {
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (!isUnapplicable(error) && !lastAttempt) throw error;
      this.logger.error({ err: error, runId, jobId: job.id, event: event.type }, 'result cannot be applied; failing its run');
      const why = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      await this.orchestrator.apply(runId, {
        type: 'fail',
        at: Date.now(),
        error: { code: 'INTERNAL', message: `podflow could not apply ${subjectOf(job.data)} to run ${runId} (${why.slice(0, 500)}); the run was failed instead of waiting for its timeout` },
      });
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.worker?.close();
  }
}
