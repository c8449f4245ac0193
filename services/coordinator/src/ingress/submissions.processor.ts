import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { MAX_JSON_DEPTH, PodflowError, QUEUE_NAMES, findTooDeep, queuePrefix, replyTargetProblem, type RunCompletion, type SubmissionMessage } from '@podflow/protocol';
import type { RedisClient } from '@podflow/redis';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { targetIdentity } from '../notify/notify-targets';
import { CRASH_TOLERANT_CONSUMER } from '../infra/crash-tolerant-consumer';
import { RunNotifier } from '../notify/run-notifier';
import { RunStore } from '../orchestration/run-store';
import { RunsService } from '../runs/runs.service';
import { CONFIG, LOGGER, REDIS } from '../tokens';

/**
 * Queue ingress: other services add `SubmissionMessage`s to `submissions` (see libs/client).
 * The job's return value is `{ runId }`; an invalid submission (definition, inputs nested too
 * deep, egress the tenant is not granted, ...) fails the job without retries, and its failure
 * reason carries the code and message. A submission naming `replyTo` gets its run's completion
 * on that stream when the run ends, or a `rejected` one when it never became a run.
 */
@Injectable()
export class SubmissionsProcessor implements OnApplicationBootstrap, OnApplicationShutdown {
  private worker?: Worker<SubmissionMessage, { runId: string }>;

  constructor(
    private readonly runs: RunsService,
    private readonly notifier: RunNotifier,
    private readonly store: RunStore,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.worker = new Worker<SubmissionMessage, { runId: string }>(
      QUEUE_NAMES.submissions,
      async (job, token) => {
        try {
          return await this.accept(job, token);
        } catch (error) {
          // A submission that can never become a run still gets an answer on its reply target:
          // refused, or failing on its last attempt.
          const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
          if (error instanceof UnrecoverableError) await this.reject(job, error.message);
          else if (!(error instanceof DelayedError) && lastAttempt) await this.reject(job, `INTERNAL: ${(error as Error).message}; the submission was tried ${job.attemptsMade + 1} times`);
          throw error;
        }
      },
      {
        connection: this.redis,
        prefix: queuePrefix(this.config.QUEUE_PREFIX, QUEUE_NAMES.submissions),
        concurrency: 8,
        ...CRASH_TOLERANT_CONSUMER,
      },
    );
    this.worker.on('failed', (job, error) => this.logger.warn({ err: error, jobId: job?.id }, 'submission rejected'));
    this.worker.on('error', (error) => this.logger.error({ err: error }, 'submissions worker error'));
    await this.worker.waitUntilReady();
  }

  private async accept(job: Job<SubmissionMessage>, token: string | undefined): Promise<{ runId: string }> {
    const message = job.data;
    if (!message.tenantId || (message.workflow === undefined) === (message.workflowId === undefined)) {
      throw new UnrecoverableError('BAD_REQUEST: a submission needs tenantId and exactly one of workflow or workflowId');
    }
    const replyProblem = replyTargetProblem(message.replyTo, message.correlationId);
    if (replyProblem) throw new UnrecoverableError(`BAD_REQUEST: ${replyProblem}`);
    if (message.webhookUrl !== undefined && typeof message.webhookUrl !== 'string') throw new UnrecoverableError('BAD_REQUEST: webhookUrl must be a string: an absolute http:// or https:// URL');
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
        ...(message.replyTo !== undefined ? { reply: { replyTo: message.replyTo, submissionId: job.id } } : {}),
        ...(message.webhookUrl !== undefined ? { webhookUrl: message.webhookUrl } : {}),
        ...(message.correlationId !== undefined ? { correlationId: message.correlationId } : {}),
      });
      return { runId: id };
    } catch (error) {
      if (error instanceof PodflowError && error.code === 'TOO_MANY_REQUESTS') {
        // Past the tenant's runs per minute: the submission waits for the next window, never dropped.
        const retryAfterSeconds = Number(error.details?.retryAfterSeconds ?? 1);
        this.logger.info({ tenantId: message.tenantId, jobId: job.id, retryAfterSeconds }, "submission over its tenant's runs per minute; delayed");
        await job.moveToDelayed(Date.now() + retryAfterSeconds * 1000, token);
        throw new DelayedError();
      }
      if (error instanceof PodflowError && !error.retryable && error.code !== 'INTERNAL') throw new UnrecoverableError(`${error.code}: ${error.message}`);
      throw error;
    }
  }

  /**
   * Sends a `rejected` completion to the submission's reply target, when it names a valid one and
   * no run will answer it: a run of its key that holds this target already (an earlier attempt
   * created it before its coordinator died) sends its own completion; one that does not (its
   * targets were full, a webhook was refused) leaves this submission to be answered here.
   */
  private async reject(job: Job<SubmissionMessage>, reason: string): Promise<void> {
    const { replyTo, correlationId, tenantId } = job.data;
    if (typeof replyTo !== 'string' || replyTargetProblem(replyTo, undefined)) return;
    if (typeof tenantId === 'string' && (await this.runWillAnswer(tenantId, job.data.idempotencyKey ?? `submission:${job.id}`, replyTo, correlationId))) return;
    const [code, ...rest] = reason.split(': ');
    const completion: RunCompletion = {
      tenantId: String(tenantId ?? ''),
      status: 'rejected',
      submissionId: job.id,
      ...(typeof correlationId === 'string' && !replyTargetProblem(undefined, correlationId) ? { correlationId } : {}),
      error: rest.length > 0 && /^[A-Z_]+$/.test(code!) ? { code: code!, message: rest.join(': ') } : { code: 'BAD_REQUEST', message: reason },
      finishedAt: new Date().toISOString(),
    };
    await this.notifier.replies.append(replyTo, completion, `submission\n${job.id}`);
  }

  private async runWillAnswer(tenantId: string, key: string, replyTo: string, correlationId: unknown): Promise<boolean> {
    try {
      const run = await this.store.runOfIdempotencyKey(tenantId, key);
      if (!run) return false;
      const identity = targetIdentity({ kind: 'reply', replyTo, ...(typeof correlationId === 'string' ? { correlationId } : {}) });
      return (await this.store.recordWithTargets(run.id)).targets.some((target) => targetIdentity(target) === identity);
    } catch {
      // Redis failing too: answering twice is allowed, leaving the submitter without an answer is not.
      return false;
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.worker?.close();
  }
}
