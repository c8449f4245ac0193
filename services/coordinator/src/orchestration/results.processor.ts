import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { QUEUE_NAMES, queuePrefix, type ExecResult, type FinishedReport, type ResultMessage } from '@podflow/protocol';
import type { EngineEvent } from '@podflow/workflow';
import { Worker, type Job } from 'bullmq';
import type { RedisClient } from '@podflow/redis';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { CRASH_TOLERANT_CONSUMER } from '../infra/crash-tolerant-consumer';
import { CONFIG, LOGGER, REDIS } from '../tokens';
import { Admission } from './admission';
import { Orchestrator } from './orchestrator.service';
import { OutboxSweeper } from './outbox-sweeper';
import { UsageStore } from '../tenancy/usage';
import { CoordinatorMetrics } from '../metrics/coordinator-metrics';

/**
 * The engine events a message from the `results` queue stands for, grouped by run (in message
 * order). Run and node transitions are stamped with `receivedAt`, the coordinator's clock: worker
 * clocks may drift, so they only time the execution itself (the result's `timings`). A run
 * timeout keeps its deadline. A result whose start was never reported (a short execution: worker
 * STARTED_REPORT_DELAY_MS) records the start first, so the run's events still show the node
 * running before it finished.
 * @throws TypeError for a message that is not one of the known kinds.
 */
export function eventsOf(message: ResultMessage, receivedAt: number): Map<string, EngineEvent[]> {
  const byRun = new Map<string, EngineEvent[]>();
  const add = (runId: string, ...events: EngineEvent[]) => {
    if (typeof runId !== 'string' || runId.length === 0) throw new TypeError('the message names no run');
    byRun.set(runId, [...(byRun.get(runId) ?? []), ...events]);
  };
  const addFinished = ({ result, startReported }: FinishedReport) => {
    const finished: EngineEvent = { type: 'node_finished', result, at: receivedAt };
    if (startReported !== false) add(result.runId, finished);
    else add(result.runId, { type: 'node_started', nodeId: result.nodeId, executionId: result.executionId, at: receivedAt }, finished);
  };
  switch (message.kind) {
    case 'started':
      add(message.runId, { type: 'node_started', nodeId: message.nodeId, executionId: message.executionId, at: receivedAt });
      break;
    case 'finished':
      addFinished(message);
      break;
    case 'finished_batch':
      message.results.forEach(addFinished);
      break;
    case 'run_timeout':
      add(message.runId, { type: 'run_timeout', at: message.at });
      break;
    default:
      throw new TypeError(`unknown results message kind ${JSON.stringify((message as { kind?: unknown }).kind)}`);
  }
  return byRun;
}

/**
 * Consumes `results`: each message goes into its run's inbox (durable) and the job completes;
 * the run's owner applies inboxes in batches (orchestrator.service.ts). A message that cannot be
 * read is dropped with an error in the log: it would fail the same way on every delivery.
 */
/** The finished results a message carries. */
export function finishedResults(message: ResultMessage): ExecResult[] {
  const reports = message.kind === 'finished' ? [message] : message.kind === 'finished_batch' ? message.results : [];
  return reports.map((report) => report.result).filter((result) => typeof result === 'object' && result !== null);
}

/** Execution ids of the finished results in a message, by tenant (a malformed result is left out). */
export function finishedByTenant(message: ResultMessage): Map<string, string[]> {
  const byTenant = new Map<string, string[]>();
  for (const result of finishedResults(message)) {
    if (typeof result?.tenantId !== 'string' || typeof result.executionId !== 'string') continue;
    byTenant.set(result.tenantId, [...(byTenant.get(result.tenantId) ?? []), result.executionId]);
  }
  return byTenant;
}

@Injectable()
export class ResultsProcessor implements OnApplicationBootstrap, OnApplicationShutdown {
  private worker?: Worker<ResultMessage>;

  constructor(
    private readonly orchestrator: Orchestrator,
    private readonly admission: Admission,
    private readonly sweeper: OutboxSweeper,
    private readonly usage: UsageStore,
    private readonly metrics: CoordinatorMetrics,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.worker = new Worker<ResultMessage>(QUEUE_NAMES.results, (job) => this.process(job), {
      connection: this.redis,
      prefix: queuePrefix(this.config.QUEUE_PREFIX, QUEUE_NAMES.results),
      concurrency: this.config.RESULTS_CONCURRENCY,
      ...CRASH_TOLERANT_CONSUMER,
    });
    this.worker.on('failed', (job, error) => this.logger.error({ err: error, jobId: job?.id }, 'result not handed to its run; it will be retried'));
    this.worker.on('error', (error) => this.logger.error({ err: error }, 'results worker error'));
    await this.worker.waitUntilReady();
  }

  private async process(job: Job<ResultMessage>): Promise<void> {
    let byRun: Map<string, EngineEvent[]>;
    try {
      byRun = eventsOf(job.data, Date.now());
    } catch (error) {
      this.logger.error({ err: error, jobId: job.id }, 'result message cannot be read; dropped');
      return;
    }
    // Runs in parallel; if one submit fails the job is retried, and the runs that had their
    // events already ignore them the second time (the engine drops stale results).
    // Fair dispatch counts each tenant's executions in exec; first come first served does not.
    const finished = this.admission.policy.fair ? finishedByTenant(job.data) : new Map<string, string[]>();
    const results = finishedResults(job.data);
    await Promise.all([
      this.usage.record(results, Date.now()),
      ...[...byRun].map(([runId, events]) => this.orchestrator.submit(runId, events)),
      // Out of their tenants' in-flight counts (idempotent, like the submit: a retried message is harmless).
      ...[...finished].map(([tenantId, executionIds]) => this.admission.store.finishedSoon(tenantId, executionIds)),
    ]);
    for (const tenantId of finished.keys()) this.sweeper.releaseSoon(tenantId);
    // Counted once the message is handled (a retried message would count twice before).
    this.metrics.resultsReceived(results);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.worker?.close();
  }
}
