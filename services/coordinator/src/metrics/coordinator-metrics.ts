import { Inject, Injectable } from '@nestjs/common';
import { QUEUE_NAMES, queuePrefix, type ExecResult } from '@podflow/protocol';
import type { RedisClient } from '@podflow/redis';
import { Queue } from 'bullmq';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CoordinatorConfig } from '../config';
import { RunKeys } from '../orchestration/run-keys';
import { CONFIG, REDIS } from '../tokens';

/** Job states counted per queue (completed jobs are kept a while for deduplication: not a backlog). */
const STATES = ['waiting', 'prioritized', 'delayed', 'active', 'failed'] as const;
/** Held tenants whose held runs are counted per scrape (the rest are in `podflow_outbox_backlog_runs` as a lower bound). */
const HELD_TENANTS_COUNTED = 1000;

/**
 * The coordinator's Prometheus metrics (`GET /metrics`), all under `podflow_`. Queue depths and
 * backlogs are read from Redis at scrape time (every coordinator reports the same shared
 * figures; aggregate with max, not sum); counters and histograms count what this coordinator did.
 * Tenant labels are bounded: the first METRICS_MAX_TENANTS tenants seen get their own, the rest
 * share `_other`.
 */
@Injectable()
export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly queues: Array<{ name: string; queue: Queue }>;
  private readonly keys: RunKeys;
  private readonly tenantLabels = new Set<string>();
  readonly resultsApplied: Counter;
  readonly runsFinished: Counter<'status'>;
  private readonly executions: Counter<'tenant' | 'outcome'>;
  private readonly scheduleToStart: Histogram;
  readonly webhookAttempts: Counter<'outcome'>;

  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {
    this.keys = new RunKeys(config.QUEUE_PREFIX);
    this.queues = Object.values(QUEUE_NAMES).map((name) => ({ name, queue: new Queue(name, { connection: redis, prefix: queuePrefix(config.QUEUE_PREFIX, name) }) }));
    collectDefaultMetrics({ register: this.registry, prefix: 'podflow_coordinator_' });
    const registers = [this.registry];
    const queueJobs: Gauge<'queue' | 'state'> = new Gauge({
      name: 'podflow_queue_jobs',
      help: 'Jobs per queue (exec, results, submissions, webhooks) and state (waiting, prioritized, delayed, active, failed), read from Redis at scrape time',
      labelNames: ['queue', 'state'],
      registers,
      collect: async () => {
        const counts = await Promise.all(this.queues.map(({ queue }) => queue.getJobCounts(...STATES)));
        this.queues.forEach(({ name }, i) => {
          for (const state of STATES) queueJobs.set({ queue: name, state }, counts[i]![state] ?? 0);
        });
      },
    });
    const backlog: Gauge = new Gauge({
      name: 'podflow_backlog_executions',
      help: 'Executions queued or running in exec (waiting + prioritized + delayed + active): what to scale workers on',
      registers,
      collect: async () => {
        const exec = this.queues.find((q) => q.name === QUEUE_NAMES.exec)!.queue;
        const counts = await exec.getJobCounts('waiting', 'prioritized', 'delayed', 'active');
        backlog.set(Object.values(counts).reduce((sum, n) => sum + n, 0));
      },
    });
    const outbox: Gauge<'kind'> = new Gauge({
      name: 'podflow_outbox_backlog_runs',
      help: 'Runs with commands waiting: active (a coordinator is carrying out its outbox) and held (ready executions waiting for admission)',
      labelNames: ['kind'],
      registers,
      collect: async () => {
        const [active, tenants] = await Promise.all([this.redis.zcard(this.keys.activeRuns()), this.redis.zrange(this.keys.heldTenants(), 0, HELD_TENANTS_COUNTED - 1)]);
        const held = await Promise.all(tenants.map((tenant) => this.redis.zcard(this.keys.heldRuns(tenant))));
        outbox.set({ kind: 'active' }, active);
        outbox.set({ kind: 'held' }, held.reduce((sum, n) => sum + n, 0));
      },
    });
    this.resultsApplied = new Counter({ name: 'podflow_results_applied_total', help: 'Events applied to runs (results, starts, cancels, timeouts), in batches', registers });
    this.runsFinished = new Counter({ name: 'podflow_runs_finished_total', help: 'Runs that ended, by status', labelNames: ['status'], registers });
    this.executions = new Counter({
      name: 'podflow_executions_total',
      help: 'Finished executions by tenant (the first METRICS_MAX_TENANTS seen; the rest are _other) and outcome (succeeded or the error code)',
      labelNames: ['tenant', 'outcome'],
      registers,
    });
    this.scheduleToStart = new Histogram({
      name: 'podflow_schedule_to_start_seconds',
      help: 'From an execution entering exec to its sandbox starting (queue wait), as its result reports it',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.webhookAttempts = new Counter({ name: 'podflow_webhook_attempts_total', help: 'Webhook delivery attempts by outcome: delivered, retrying, failed', labelNames: ['outcome'], registers });
  }

  /** Finished executions as their results arrive. */
  resultsReceived(results: readonly ExecResult[]): void {
    for (const result of results) {
      if (typeof result?.tenantId !== 'string') continue;
      const outcome = result.status === 'succeeded' ? 'succeeded' : String(result.error?.code ?? 'failed');
      this.executions.inc({ tenant: this.tenantLabel(result.tenantId), outcome });
      const wait = result.timings?.queueWaitMs;
      if (typeof wait === 'number' && Number.isFinite(wait) && wait >= 0) this.scheduleToStart.observe(wait / 1000);
    }
  }

  private tenantLabel(tenantId: string): string {
    if (this.tenantLabels.has(tenantId)) return tenantId;
    if (this.tenantLabels.size >= this.config.METRICS_MAX_TENANTS) return '_other';
    this.tenantLabels.add(tenantId);
    return tenantId;
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.queues.map(({ queue }) => queue.close()));
  }
}
