import type { ExecJob, ExecResult } from '@podflow/protocol';
import type { SandboxOutcome } from '@podflow/sandbox';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The worker's Prometheus metrics (`GET /metrics` on WORKER_HTTP_PORT), all under `podflow_`.
 * Labels are bounded: language (3), driver (3), outcome (succeeded or an error code of
 * DESIGN.md's closed list), layer event (4). No tenant, run or node label: per-tenant counts are
 * the coordinator's (`podflow_executions_total`, with a bounded tenant label).
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly executionSeconds: Histogram<'language' | 'driver' | 'outcome'>;
  private readonly podStartSeconds: Histogram;
  private readonly layerEvents: Counter<'event'>;
  readonly running: Gauge;

  constructor(private readonly driver: string) {
    collectDefaultMetrics({ register: this.registry, prefix: 'podflow_worker_' });
    this.executionSeconds = new Histogram({
      name: 'podflow_execution_duration_seconds',
      help: 'Time inside the sandbox of one execution, start to result, by language, sandbox driver and outcome (succeeded or the error code)',
      labelNames: ['language', 'driver', 'outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
      registers: [this.registry],
    });
    this.podStartSeconds = new Histogram({
      name: 'podflow_pod_create_to_running_seconds',
      help: 'Kubernetes driver: from creating an execution\'s pod to its container running (cold starts; warm and adopted pods are not counted)',
      buckets: [0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60],
      registers: [this.registry],
    });
    this.layerEvents = new Counter({
      name: 'podflow_layer_cache_events_total',
      help: 'Dependency layers: hit (published already), built (installed by this worker), shared (waited for another builder), evicted',
      labelNames: ['event'],
      registers: [this.registry],
    });
    this.running = new Gauge({ name: 'podflow_worker_executions_running', help: 'Executions this worker is running now', registers: [this.registry] });
  }

  /** One execution finished with `result` (`outcome` is what the sandbox said, when it ran). */
  executed(job: ExecJob, result: ExecResult, outcome?: Pick<SandboxOutcome, 'layer' | 'podStartMs'>): void {
    const label = result.status === 'succeeded' ? 'succeeded' : (result.error?.code ?? 'failed');
    this.executionSeconds.observe({ language: job.language, driver: this.driver, outcome: label }, result.timings.executionMs / 1000);
    if (outcome?.podStartMs !== undefined) this.podStartSeconds.observe(outcome.podStartMs / 1000);
    if (outcome?.layer) this.layerEvents.inc({ event: outcome.layer.source === 'cache' ? 'hit' : outcome.layer.source });
  }

  evicted(count: number): void {
    this.layerEvents.inc({ event: 'evicted' }, count);
  }
}
