import { call } from '../security/support/api';
import { freePort, startStack, type Stack } from '../support/stack';

// Issue 14: /metrics on the coordinator and the worker (prom-client, names under podflow_), and
// the worker's /healthz and /readyz. A scrape shows the backlog and the execution histograms move.
const METRICS_TOKEN = 'metrics-token-0123456789';

/** The value of the sample `name{labels}` in Prometheus text (labels in any order), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return undefined;
}

describe('metrics and worker probes (issue 14)', () => {
  let stack: Stack;
  let workerUrl: string;
  beforeAll(async () => {
    stack = await startStack({ workers: 0, coordinatorEnv: { METRICS_TOKEN } });
    const port = await freePort();
    await stack.startWorker({ SANDBOX_DRIVER: 'noop', NOOP_DELAY_MS: '200', WORKER_CONCURRENCY: '2', WORKER_HTTP_PORT: String(port) });
    workerUrl = `http://127.0.0.1:${port}`;
  });
  afterAll(() => stack?.stop());

  const coordinatorMetrics = async () => (await call(stack, 'GET', '/metrics', { key: METRICS_TOKEN })).text;
  const workerMetrics = async () => (await fetch(`${workerUrl}/metrics`)).text();

  it('serves the worker probes', async () => {
    expect((await fetch(`${workerUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${workerUrl}/readyz`);
    expect({ status: ready.status, body: await ready.json() }).toEqual({ status: 200, body: { status: 'ready' } });
    expect((await fetch(`${workerUrl}/v1/runs`)).status).toBe(404);
  });

  it('asks for the token when METRICS_TOKEN is set', async () => {
    expect((await call(stack, 'GET', '/metrics', { key: null })).status).toBe(401);
    expect((await call(stack, 'GET', '/metrics', { key: 'wrong-token-0123456789' })).status).toBe(401);
    expect((await call(stack, 'GET', '/metrics', { key: METRICS_TOKEN })).status).toBe(200);
  });

  it('shows the backlog while work waits, and the counts and histograms once it ran', async () => {
    const before = await coordinatorMetrics();
    expect(sample(before, 'podflow_backlog_executions')).toBe(0);
    expect(sample(before, 'podflow_queue_jobs', { queue: 'exec', state: 'waiting' })).toBe(0);
    const workflow = { id: 'm', nodes: Array.from({ length: 10 }, (_, i) => ({ id: `n${i}`, language: 'python', code: 'def main(args): return {}' })) };
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await stack.client.submitRun({ workflow })).id);
    // 30 executions of 200 ms on 2 slots: the backlog is visible for seconds.
    const busy = await coordinatorMetrics();
    expect(sample(busy, 'podflow_backlog_executions')).toBeGreaterThan(2);
    expect(sample(busy, 'podflow_queue_jobs', { queue: 'exec', state: 'active' })).toBeGreaterThanOrEqual(1);
    for (const id of ids) await stack.client.waitForRun(id, 100, 60_000);
    const after = await coordinatorMetrics();
    expect(sample(after, 'podflow_backlog_executions')).toBe(0);
    expect(sample(after, 'podflow_executions_total', { tenant: 'acme', outcome: 'succeeded' })).toBe(30);
    expect(sample(after, 'podflow_schedule_to_start_seconds_count')).toBe(30);
    expect(sample(after, 'podflow_runs_finished_total', { status: 'succeeded' })).toBe(3);
    expect(sample(after, 'podflow_results_applied_total')).toBeGreaterThanOrEqual(30);
    const worker = await workerMetrics();
    expect(sample(worker, 'podflow_execution_duration_seconds_count', { language: 'python', driver: 'noop', outcome: 'succeeded' })).toBe(30);
    expect(sample(worker, 'podflow_worker_executions_running')).toBe(0);
  });
});
