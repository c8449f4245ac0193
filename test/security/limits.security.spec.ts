import { QueueSubmitter } from '@podflow/client';
import { QUEUE_NAMES } from '@podflow/protocol';
import { Queue } from 'bullmq';
import { startStack, type Stack } from '../support/stack';
import { OTHER_KEY, call } from './support/api';

// Issue 13, per-tenant limits: runs per minute. Over the limit an API call gets 429 with
// Retry-After and a message naming the limit; a queue submission waits (delayed) instead, never
// dropped. Windows are whole minutes, so each test starts well inside one.
const ADMIN_KEY = `admin-${'q'.repeat(30)}`;
const workflow = { id: 'w', nodes: [{ id: 'a', language: 'python', code: 'def main(args): return {}' }] };

/** Waits until at least `marginMs` remain in the current minute (a window must not end mid-test). */
async function insideOneMinute(marginMs = 20_000): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < marginMs) await new Promise((resolve) => setTimeout(resolve, left + 100));
}

describe('runs per minute (issue 13)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { TENANT_RUNS_PER_MINUTE: '3' }, coordinatorEnv: { PODFLOW_ADMIN_KEY: ADMIN_KEY } });
  });
  afterAll(() => stack?.stop());

  it("refuses a tenant's runs past its limit with 429, Retry-After and the limit's name; other tenants go on; nothing is created", async () => {
    await insideOneMinute();
    const accepted: Array<{ status: number }> = [];
    for (let i = 0; i < 3; i++) accepted.push(await call(stack, 'POST', '/v1/runs', { body: { workflow } }));
    expect(accepted.map((r) => r.status)).toEqual([202, 202, 202]);
    const refused = await call(stack, 'POST', '/v1/runs', { body: { workflow } });
    expect(refused.status).toBe(429);
    expect(refused.json.error).toMatchObject({ code: 'TOO_MANY_REQUESTS', message: expect.stringContaining('tenant "acme" may start 3 runs per minute') });
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // Single executions are runs too.
    expect((await call(stack, 'POST', '/v1/executions', { body: { language: 'python', code: 'def main(args): return {}' } })).status).toBe(429);
    // The refused calls created nothing.
    const listed = await call(stack, 'GET', '/v1/runs');
    expect(listed.json.runs).toHaveLength(3);
    // Another tenant has its own count.
    expect((await call(stack, 'POST', '/v1/runs', { key: OTHER_KEY, body: { workflow } })).status).toBe(202);
  });

  it("takes a tenant's own limit from its record (admin API), and delays queue submissions past it instead of failing them", async () => {
    await insideOneMinute();
    const admin = (method: string, path: string, body?: unknown) => call(stack, method, path, { key: ADMIN_KEY, body });
    expect((await admin('POST', '/v1/admin/tenants', { id: 'queued' })).status).toBe(201);
    expect((await admin('PATCH', '/v1/admin/tenants/queued', { runsPerMinute: 1 })).json).toMatchObject({ runsPerMinute: 1 });
    const submitter = new QueueSubmitter(stack.redis, stack.prefix);
    const submissions = new Queue(QUEUE_NAMES.submissions, { connection: stack.redis, prefix: stack.bullPrefix(QUEUE_NAMES.submissions) });
    try {
      const jobs: string[] = [];
      for (let i = 0; i < 3; i++) jobs.push(await submitter.submit({ tenantId: 'queued', workflow, inputs: {}, idempotencyKey: `q-${i}` }));
      const states = async () => Promise.all(jobs.map((id) => submissions.getJobState(id)));
      for (let i = 0; i < 100; i++) {
        const now = await states();
        if (now.filter((s) => s === 'completed').length === 1 && now.filter((s) => s === 'delayed').length === 2) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect((await states()).sort()).toEqual(['completed', 'delayed', 'delayed']);
      // Delayed to the next window, not retried in a loop and not failed.
      const delayed = (await Promise.all(jobs.map((id) => submissions.getJob(id)))).filter((job) => job && job.finishedOn === undefined);
      for (const job of delayed) {
        expect(job!.attemptsMade).toBe(0);
        expect(job!.delay).toBeGreaterThan(0);
      }
    } finally {
      await submissions.close();
      await submitter.close();
    }
  });
});

describe('node timeouts and resources per tenant (issue 13)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ coordinatorEnv: { PODFLOW_ADMIN_KEY: ADMIN_KEY } });
  });
  afterAll(() => stack?.stop());

  it("refuses a run whose timeouts or resources exceed its tenant's limits, naming each, for inline and registered workflows", async () => {
    const admin = (method: string, path: string, body?: unknown) => call(stack, method, path, { key: ADMIN_KEY, body });
    const set = await admin('PATCH', '/v1/admin/tenants/globex', { maxNodeTimeoutSeconds: 30, maxRunTimeoutSeconds: 600, maxNodeMemory: '256Mi', maxNodeCpu: '500m' });
    expect(set.json).toMatchObject({ maxNodeTimeoutSeconds: 30, maxRunTimeoutSeconds: 600, maxNodeMemory: '256Mi', maxNodeCpu: '500m' });
    expect((await admin('PATCH', '/v1/admin/tenants/globex', { maxNodeMemory: 'lots' })).status).toBe(400);
    const greedy = {
      id: 'greedy',
      timeout: '2h',
      nodes: [{ id: 'a', language: 'python', code: 'def main(args): return {}', timeout: '5m', resources: { memory: '1Gi', cpu: '2' } }],
    };
    const refused = await call(stack, 'POST', '/v1/runs', { key: OTHER_KEY, body: { workflow: greedy } });
    expect(refused.status).toBe(400);
    expect(refused.json.error.code).toBe('INVALID_WORKFLOW');
    for (const named of ['run timeout 2h is more than tenant "globex" may ask for (maxRunTimeoutSeconds 10m)', 'maxNodeTimeoutSeconds 30s', 'maxNodeMemory 256Mi', 'maxNodeCpu 500m']) expect(refused.json.error.message).toContain(named);
    // Registered before a limit applied: refused when run, not only when registered.
    expect((await call(stack, 'POST', '/v1/workflows', { body: greedy })).status).toBe(201);
    expect((await call(stack, 'POST', '/v1/runs', { body: { workflowId: 'greedy' } })).status).toBe(202);
    // Within the limits it runs; the other tenant is not affected by globex's limits.
    const modest = { id: 'modest', nodes: [{ id: 'a', language: 'python', code: 'def main(args): return {}', timeout: '20s', resources: { memory: '128Mi' } }] };
    expect((await call(stack, 'POST', '/v1/runs', { key: OTHER_KEY, body: { workflow: modest } })).status).toBe(202);
    await admin('PATCH', '/v1/admin/tenants/acme', { maxNodeTimeoutSeconds: 30 });
    const registered = await call(stack, 'POST', '/v1/runs', { body: { workflowId: 'greedy' } });
    expect(registered.status).toBe(400);
    expect(registered.json.error.message).toContain('timeout 5m is more than tenant "acme" may ask for (maxNodeTimeoutSeconds 30s)');
  });
});

describe('runs in progress per tenant (issue 13)', () => {
  let stack: Stack;
  beforeAll(async () => {
    // Each execution holds its slot 1.5 s, so runs stay in progress while the test submits more.
    stack = await startStack({ env: { TENANT_MAX_RUNS_IN_PROGRESS: '2' }, workerEnv: { SANDBOX_DRIVER: 'noop', NOOP_DELAY_MS: '1500', WORKER_CONCURRENCY: '8' } });
  });
  afterAll(() => stack?.stop());

  it('refuses a third run in progress with 429 naming the limit, accepts again once one finished, and delays a queue submission instead', async () => {
    const first = await call(stack, 'POST', '/v1/runs', { body: { workflow } });
    const second = await call(stack, 'POST', '/v1/runs', { body: { workflow } });
    expect([first.status, second.status]).toEqual([202, 202]);
    const refused = await call(stack, 'POST', '/v1/runs', { body: { workflow } });
    expect(refused.status).toBe(429);
    expect(refused.json.error.message).toContain('tenant "acme" may have 2 runs in progress and has 2 (maxRunsInProgress');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Another tenant has its own count.
    expect((await call(stack, 'POST', '/v1/runs', { key: OTHER_KEY, body: { workflow } })).status).toBe(202);
    // The queue waits rather than failing.
    const submitter = new QueueSubmitter(stack.redis, { prefix: stack.prefix });
    try {
      const completion = submitter.submitAndWait({ tenantId: 'acme', workflow, inputs: {} }, { timeoutMs: 60_000 });
      await stack.client.waitForRun(first.json.id, 100, 30_000);
      await stack.client.waitForRun(second.json.id, 100, 30_000);
      expect(await completion).toMatchObject({ status: 'succeeded' });
    } finally {
      await submitter.close();
    }
    // Room again.
    expect((await call(stack, 'POST', '/v1/runs', { body: { workflow } })).status).toBe(202);
  });
});
