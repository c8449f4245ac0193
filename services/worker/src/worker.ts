import { QUEUE_NAMES, resultJobId, type ExecJob, type ResultMessage } from '@podflow/protocol';
import type { SandboxDriver } from '@podflow/sandbox';
import type { ObjectStore } from '@podflow/storage';
import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { CancellationRegistry } from './cancellation';
import { runExecution } from './execution';

export interface PodflowWorkerOptions {
  redisUrl: string;
  prefix: string;
  workerId: string;
  concurrency: number;
  lockDurationMs: number;
  shutdownGraceMs: number;
  driver: SandboxDriver;
  store: ObjectStore;
  /** Outputs whose JSON is larger are stored and referenced (`OUTPUT_INLINE_MAX_BYTES`; default 256 KiB). */
  outputInlineMaxBytes?: number;
  logger: Logger;
}

/** Result messages are durable: retried if Redis hiccups, kept for an hour for idempotency. */
const RESULT_JOB_OPTIONS = {
  attempts: 10,
  backoff: { type: 'exponential', delay: 200 },
  removeOnComplete: { age: 3600, count: 100_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
} as const;

/**
 * Lifecycle: `start()` → running (takes `exec` jobs) → `close()` stops taking jobs, waits up to
 * the grace period for running executions, then hands the rest back to the queue (moved to
 * delayed with no delay) so another worker runs them, and closes its connections.
 */
export class PodflowWorker {
  private readonly connection: Redis;
  private readonly results: Queue<ResultMessage>;
  private readonly cancellations: CancellationRegistry;
  private worker?: Worker<ExecJob>;

  constructor(private readonly options: PodflowWorkerOptions) {
    this.connection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
    this.results = new Queue<ResultMessage>(QUEUE_NAMES.results, { connection: this.connection, prefix: options.prefix });
    this.cancellations = new CancellationRegistry(new Redis(options.redisUrl), this.connection, options.prefix);
  }

  async start(): Promise<void> {
    await this.cancellations.start();
    this.worker = new Worker<ExecJob>(QUEUE_NAMES.exec, (job, token) => this.process(job, token), {
      connection: this.connection,
      prefix: this.options.prefix,
      concurrency: this.options.concurrency,
      lockDuration: this.options.lockDurationMs,
      stalledInterval: Math.max(1000, Math.floor(this.options.lockDurationMs / 2)),
      maxStalledCount: 3,
    });
    this.worker.on('error', (error) => this.options.logger.error({ err: error }, 'exec worker error'));
    await this.worker.waitUntilReady();
    this.options.logger.info(
      { workerId: this.options.workerId, concurrency: this.options.concurrency, driver: this.options.driver.name },
      'worker ready',
    );
  }

  async close(): Promise<void> {
    const grace = setTimeout(() => {
      if (this.cancellations.size > 0) {
        this.options.logger.warn({ running: this.cancellations.size }, 'grace period over: handing running executions back to the queue');
      }
      this.cancellations.abortAll('shutdown');
    }, this.options.shutdownGraceMs);
    try {
      await this.worker?.close();
    } finally {
      clearTimeout(grace);
    }
    await this.cancellations.stop();
    await this.options.driver.close();
    await this.results.close();
    this.connection.disconnect();
  }

  private async process(job: Job<ExecJob>, token: string | undefined): Promise<void> {
    const exec = job.data;
    const log = this.options.logger.child({ tenantId: exec.tenantId, runId: exec.runId, nodeId: exec.nodeId, executionId: exec.executionId });
    if (await this.cancellations.isCanceled(exec.executionId)) {
      log.info('execution was canceled before it started; skipping');
      return;
    }
    await this.report({ kind: 'started', runId: exec.runId, nodeId: exec.nodeId, attempt: exec.attempt, executionId: exec.executionId, workerId: this.options.workerId, at: Date.now() });
    const controller = this.cancellations.register(exec.executionId);
    try {
      const result = await runExecution(exec, {
        driver: this.options.driver,
        store: this.options.store,
        workerId: this.options.workerId,
        signal: controller.signal,
        outputInlineMaxBytes: this.options.outputInlineMaxBytes,
      });
      if (controller.signal.reason === 'shutdown') {
        // Hand the job back instead of reporting a cancel the user never asked for.
        log.info('worker shutting down: execution handed back to the queue');
        await job.moveToDelayed(Date.now(), token);
        throw new DelayedError();
      }
      await this.report({ kind: 'finished', result });
      log.info({ status: result.status, code: result.error?.code, ms: result.timings.executionMs }, 'execution finished');
    } finally {
      this.cancellations.unregister(exec.executionId);
    }
  }

  private async report(message: ResultMessage): Promise<void> {
    await this.results.add(message.kind, message, { ...RESULT_JOB_OPTIONS, jobId: resultJobId(message) });
  }
}
