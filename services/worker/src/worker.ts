import { MAX_RESULTS_PER_MESSAGE, QUEUE_NAMES, givenUpOf, givenUpResult, queuePrefix, resultJobId, type ExecJob, type FinishedReport, type ResultMessage } from '@podflow/protocol';
import { connectRedis, type RedisClient, type RedisConnectionPlan } from '@podflow/redis';
import type { SandboxDriver, SandboxOutcome } from '@podflow/sandbox';
import type { ObjectStore } from '@podflow/storage';
import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { CancellationRegistry } from './cancellation';
import { runExecution } from './execution';
import type { WorkerMetrics } from './metrics';
import { ResultBatcher } from './result-batcher';
import { DEFAULT_STARTED_REPORT_DELAY_MS, StartReport } from './start-report';
import type { StoreRetryPolicy } from './store-retry';

export interface PodflowWorkerOptions {
  /** Where Redis is: one Redis, Sentinel or a Cluster (`redisConnectionPlan(config)`). */
  redis: RedisConnectionPlan;
  /** QUEUE_PREFIX: the key prefix (queues get their hash tags from `queuePrefix`). */
  prefix: string;
  workerId: string;
  concurrency: number;
  lockDurationMs: number;
  shutdownGraceMs: number;
  driver: SandboxDriver;
  store: ObjectStore;
  /** Outputs whose JSON is larger are stored and referenced (`OUTPUT_INLINE_MAX_BYTES`; default 256 KiB). */
  outputInlineMaxBytes?: number;
  /** `started` is reported only for executions still running after this long (STARTED_REPORT_DELAY_MS; default 100; 0 = always, first). */
  startedReportDelayMs?: number;
  /** How storing a finished execution's files and output is retried (default `DEFAULT_STORE_RETRY`). */
  storeRetry?: StoreRetryPolicy;
  logger: Logger;
  /** Prometheus metrics of this worker (metrics.ts); none in tests that do not look. */
  metrics?: WorkerMetrics;
}

/** Stalls (lock lost: worker died or blocked) a job survives before BullMQ fails it. */
const MAX_STALLED_COUNT = 3;

/**
 * Result messages are durable: retried if Redis hiccups. A completed one is removed at once: a
 * message delivered twice is harmless (the coordinator ignores a result for an execution that is
 * no longer active), so keeping them for deduplication would only cost Redis work per message.
 */
const RESULT_JOB_OPTIONS = {
  attempts: 10,
  backoff: { type: 'exponential', delay: 200 },
  removeOnComplete: true,
  removeOnFail: { age: 7 * 24 * 3600 },
} as const;

/**
 * Lifecycle: `start()` → running (takes `exec` jobs) → `close()` stops taking jobs, waits up to
 * the grace period for running executions, then hands the rest back to the queue (moved to
 * delayed with no delay) so another worker runs them, and closes its connections.
 *
 * Every execution ends with exactly one result (in a `finished` message, or with others that were
 * ready at the same time in a `finished_batch`: ResultBatcher): `process` reports it, and never throws once the code has run (see `runExecution`); a job
 * BullMQ gives up on (attempts exhausted, stalled more than MAX_STALLED_COUNT times: both end in
 * the worker's `failed` event) is reported by `reportGivenUp`, so no run waits for RUN_TIMEOUT.
 */
export class PodflowWorker {
  private readonly connection: RedisClient;
  /** Cancellation pub/sub: a subscribed connection can do nothing else. */
  private readonly subscriber: RedisClient;
  private readonly results: Queue<ResultMessage>;
  private readonly cancellations: CancellationRegistry;
  private readonly finished = new ResultBatcher((reports) => this.reportFinished(reports), MAX_RESULTS_PER_MESSAGE);
  private worker?: Worker<ExecJob>;
  private closing = false;
  /** Reports of given-up jobs still being written; `close()` waits for them. */
  private readonly pendingReports = new Set<Promise<void>>();
  /** Sandbox clean-ups that run after their result was reported; `close()` waits for them. */
  private readonly pendingCleanups = new Set<Promise<void>>();

  constructor(private readonly options: PodflowWorkerOptions) {
    this.connection = connectRedis(options.redis);
    this.results = new Queue<ResultMessage>(QUEUE_NAMES.results, { connection: this.connection, prefix: queuePrefix(options.prefix, QUEUE_NAMES.results) });
    this.subscriber = connectRedis(options.redis);
    this.cancellations = new CancellationRegistry(this.subscriber, this.connection, options.prefix);
  }

  async start(): Promise<void> {
    await this.cancellations.start();
    this.worker = new Worker<ExecJob>(QUEUE_NAMES.exec, (job, token) => this.process(job, token), {
      connection: this.connection,
      prefix: queuePrefix(this.options.prefix, QUEUE_NAMES.exec),
      concurrency: this.options.concurrency,
      lockDuration: this.options.lockDurationMs,
      stalledInterval: Math.max(1000, Math.floor(this.options.lockDurationMs / 2)),
      maxStalledCount: MAX_STALLED_COUNT,
    });
    this.worker.on('error', (error) => this.options.logger.error({ err: error }, 'exec worker error'));
    this.worker.on('failed', (job, error) => {
      if (!job || !isFinalFailure(job)) return; // BullMQ runs it again
      const report = this.reportGivenUp(job, error).finally(() => this.pendingReports.delete(report));
      this.pendingReports.add(report);
    });
    await this.worker.waitUntilReady();
    this.options.logger.info(
      { workerId: this.options.workerId, concurrency: this.options.concurrency, driver: this.options.driver.name },
      'worker ready',
    );
  }

  /** Ready while it takes jobs: started, not closing, Redis answering within 2 s. */
  /** Executions this worker is running now. */
  get running(): number {
    return this.cancellations.size;
  }

  async readiness(): Promise<{ ready: boolean; reason?: string }> {
    if (!this.worker || this.closing) return { ready: false, reason: this.closing ? 'the worker is stopping' : 'the worker has not started yet' };
    if (!this.worker.isRunning()) return { ready: false, reason: 'the exec queue consumer is not running' };
    try {
      await Promise.race([this.connection.ping(), new Promise((_, reject) => setTimeout(() => reject(new Error('Redis did not answer PING within 2 s')), 2_000).unref())]);
      return { ready: true };
    } catch (error) {
      return { ready: false, reason: (error as Error).message };
    }
  }

  async close(): Promise<void> {
    this.closing = true;
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
    await Promise.all(this.pendingReports);
    await Promise.all(this.pendingCleanups);
    await this.cancellations.stop();
    await this.options.driver.close();
    await this.results.close();
    this.subscriber.disconnect();
    this.connection.disconnect();
  }

  private async process(job: Job<ExecJob>, token: string | undefined): Promise<void> {
    const exec = job.data;
    const log = this.options.logger.child({ tenantId: exec.tenantId, runId: exec.runId, nodeId: exec.nodeId, executionId: exec.executionId });
    const controller = this.cancellations.register(exec.executionId);
    if (controller.signal.aborted) {
      this.cancellations.unregister(exec.executionId);
      log.info('execution was canceled before it started; skipping');
      return;
    }
    // Answered while the sandbox starts; the driver hands the code over only after it (handOver),
    // so a cancel found there stops the execution before any user code runs. A lookup that fails
    // hands the job back to the queue, as a failed job would be retried.
    const canceledCheck = this.cancellations.checkCanceled(exec.executionId, controller).then(
      () => undefined,
      (error: unknown) => {
        log.warn({ err: error }, 'could not look the execution up in the canceled set; handing the job back');
        controller.abort('shutdown');
      },
    );
    const started = new StartReport(
      () => this.report({ kind: 'started', runId: exec.runId, nodeId: exec.nodeId, attempt: exec.attempt, executionId: exec.executionId, workerId: this.options.workerId, at: Date.now() }),
      this.options.startedReportDelayMs ?? DEFAULT_STARTED_REPORT_DELAY_MS,
      (error) => log.warn({ err: error }, '`started` report failed; the result will carry the start'),
    );
    let sandboxOutcome: SandboxOutcome | undefined;
    this.options.metrics?.running.inc();
    try {
      const result = await runExecution(exec, {
        onOutcome: (outcome) => {
          sandboxOutcome = outcome;
        },
        driver: this.options.driver,
        store: this.options.store,
        workerId: this.options.workerId,
        signal: controller.signal,
        handOver: canceledCheck,
        outputInlineMaxBytes: this.options.outputInlineMaxBytes,
        deferCleanup: (cleanup) => {
          const tracked = cleanup.finally(() => this.pendingCleanups.delete(tracked));
          this.pendingCleanups.add(tracked);
        },
        ...(this.options.storeRetry ? { storeRetry: this.options.storeRetry } : {}),
        logger: log,
      });
      const startReported = await started.settle();
      if (controller.signal.reason === 'shutdown') {
        // Hand the job back instead of reporting a cancel the user never asked for.
        log.info('worker shutting down: execution handed back to the queue');
        await job.moveToDelayed(Date.now(), token);
        throw new DelayedError();
      }
      await this.finished.report(startReported ? { result } : { result, startReported: false });
      this.options.metrics?.executed(exec, result, sandboxOutcome);
      log.info({ status: result.status, code: result.error?.code, ms: result.timings.executionMs }, 'execution finished');
    } finally {
      this.options.metrics?.running.dec();
      await Promise.all([started.settle(), canceledCheck]);
      this.cancellations.unregister(exec.executionId);
    }
  }

  /** A result for a job BullMQ will not run again; an execution canceled meanwhile needs none. */
  private async reportGivenUp(job: Job<ExecJob>, error: Error): Promise<void> {
    const exec = job.data;
    const log = this.options.logger.child({ tenantId: exec?.tenantId, runId: exec?.runId, nodeId: exec?.nodeId, executionId: exec?.executionId ?? job.id });
    try {
      if (!exec?.executionId) throw new Error(`exec job ${job.id} has no execution in its data`);
      if (await this.cancellations.isCanceled(exec.executionId)) return;
      const result = givenUpResult(exec, givenUpOf(job, error.message), this.options.workerId, Date.now());
      await this.report({ kind: 'finished', result });
      log.warn({ code: result.error?.code, reason: error.message, attemptsMade: job.attemptsMade }, 'the queue gave up on the execution; reported it failed');
    } catch (reportError) {
      log.error({ err: reportError, reason: error.message }, 'could not report an execution the queue gave up on; its run waits for RUN_TIMEOUT');
    }
  }

  /** One result alone as `finished`, several together as one `finished_batch`. */
  private reportFinished(reports: FinishedReport[]): Promise<void> {
    return this.report(reports.length === 1 ? { kind: 'finished', ...reports[0]! } : { kind: 'finished_batch', results: reports });
  }

  private async report(message: ResultMessage): Promise<void> {
    await this.results.add(message.kind, message, { ...RESULT_JOB_OPTIONS, jobId: resultJobId(message) });
  }
}

/**
 * Whether BullMQ has failed `job` for good: it records `finishedOn` only then; a job that still has
 * attempts left is moved back to wait or delayed instead. Unrecoverable errors (a stalled job past
 * `maxStalledCount`) are final whatever the attempts.
 */
export function isFinalFailure(job: Pick<Job, 'finishedOn' | 'attemptsMade' | 'opts'>): boolean {
  return (job.finishedOn ?? 0) > 0 || job.attemptsMade >= (job.opts.attempts ?? 1);
}
