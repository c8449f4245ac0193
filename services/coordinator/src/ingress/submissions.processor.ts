import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { MAX_JSON_DEPTH, PodflowError, QUEUE_NAMES, findTooDeep, queuePrefix, type SubmissionMessage } from '@podflow/protocol';
import type { RedisClient } from '@podflow/redis';
import { DelayedError, UnrecoverableError, Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { RunsService } from '../runs/runs.service';
import { CONFIG, LOGGER, REDIS } from '../tokens';

/**
 * Queue ingress: other services add `SubmissionMessage`s to `submissions` (see libs/client).
 * The job's return value is `{ runId }`; an invalid submission (definition, inputs nested too
 * deep, egress the tenant is not granted, ...) fails the job without retries, and its failure
 * reason carries the code and message.
 */
@Injectable()
export class SubmissionsProcessor implements OnApplicationBootstrap, OnApplicationShutdown {
  private worker?: Worker<SubmissionMessage, { runId: string }>;

  constructor(
    private readonly runs: RunsService,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.worker = new Worker<SubmissionMessage, { runId: string }>(
      QUEUE_NAMES.submissions,
      async (job, token) => {
        const message = job.data;
        if (!message.tenantId || (message.workflow === undefined) === (message.workflowId === undefined)) {
          throw new UnrecoverableError('a submission needs tenantId and exactly one of workflow or workflowId');
        }
        // The same bound as the HTTP API's (api/json-depth.middleware.ts).
        const tooDeep = findTooDeep(message.inputs ?? {}, MAX_JSON_DEPTH, 'inputs');
        if (tooDeep) {
          throw new UnrecoverableError(`BAD_REQUEST: inputs nest deeper than ${MAX_JSON_DEPTH} levels of objects and arrays (at ${tooDeep.slice(0, 80)}); flatten the data, or pass it as a string or a file`);
        }
        try {
          const { id } = await this.runs.submit(message.tenantId, {
            workflow: message.workflow,
            workflowId: message.workflowId,
            version: message.version,
            inputs: message.inputs ?? {},
            // Without a key of its own, the job id makes a redelivered submission start one run.
            idempotencyKey: message.idempotencyKey ?? `submission:${job.id}`,
          });
          return { runId: id };
        } catch (error) {
          if (error instanceof PodflowError && error.code === 'TOO_MANY_REQUESTS') {
            // Past the tenant's runs per minute: the submission waits for the next window, never dropped.
            const retryAfterSeconds = Number(error.details?.retryAfterSeconds ?? 1);
            this.logger.info({ tenantId: message.tenantId, jobId: job.id, retryAfterSeconds }, 'submission over its tenant\'s runs per minute; delayed');
            await job.moveToDelayed(Date.now() + retryAfterSeconds * 1000, token);
            throw new DelayedError();
          }
          if (error instanceof PodflowError && !error.retryable && error.code !== 'INTERNAL') throw new UnrecoverableError(`${error.code}: ${error.message}`);
          throw error;
        }
      },
      { connection: this.redis, prefix: queuePrefix(this.config.QUEUE_PREFIX, QUEUE_NAMES.submissions), concurrency: 8 },
    );
    this.worker.on('failed', (job, error) => this.logger.warn({ err: error, jobId: job?.id }, 'submission rejected'));
    this.worker.on('error', (error) => this.logger.error({ err: error }, 'submissions worker error'));
    await this.worker.waitUntilReady();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.worker?.close();
  }
}
