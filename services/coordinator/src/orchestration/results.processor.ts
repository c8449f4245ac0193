import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { QUEUE_NAMES, type ResultMessage } from '@podflow/protocol';
import type { EngineEvent } from '@podflow/workflow';
import { Worker } from 'bullmq';
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
      async (job) => {
        const { runId, event } = eventOf(job.data);
        await this.orchestrator.apply(runId, event);
      },
      { connection: this.redis, prefix: this.config.QUEUE_PREFIX, concurrency: this.config.RESULTS_CONCURRENCY },
    );
    this.worker.on('failed', (job, error) => this.logger.error({ err: error, jobId: job?.id }, 'result not applied; it will be retried'));
    this.worker.on('error', (error) => this.logger.error({ err: error }, 'results worker error'));
    await this.worker.waitUntilReady();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.worker?.close();
  }
}
