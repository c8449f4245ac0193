import { PodflowClient, type RunView } from '@podflow/client';
import { API_KEY, startStack, type Stack } from '../support/stack';

// Issue 13, fair dispatch, end to end through the API: one coordinator, one worker with 4 slots on
// the noop driver, each execution taking NOOP_MS (work that occupies a slot, no sandbox cost).
// Tenants: acme (API_KEY) and globex (other-key), see test/support/stack.ts.
const NOOP_MS = 10;
const SLOTS = 4;
const code = 'def main(args): return {}';

function flatWorkflow(id: string, nodes: number) {
  return { id, nodes: Array.from({ length: nodes }, (_, i) => ({ id: `n${i}`, language: 'python', code })), edges: [] };
}

/** Every node's queued and started time (ms), paging through the run. */
async function nodeTimes(client: PodflowClient, runId: string): Promise<Array<{ queuedAt: number; startedAt: number }>> {
  const times: Array<{ queuedAt: number; startedAt: number }> = [];
  let cursor: string | undefined;
  do {
    const page: RunView = await client.getRun(runId, { nodeLimit: 1000, ...(cursor ? { nodeCursor: cursor } : {}) });
    for (const node of Object.values(page.nodes)) {
      const timings = node.timings ?? {};
      if (timings.queuedAt && timings.startedAt) times.push({ queuedAt: Date.parse(timings.queuedAt), startedAt: Date.parse(timings.startedAt) });
    }
    cursor = page.nextNodeCursor;
  } while (cursor);
  return times;
}

/**
 * Executions slower than the worker's STARTED_REPORT_DELAY_MS (100 ms): they report `started` while
 * running, so a node's startedAt → finishedAt is (a tail of) its real run, by the coordinator's clock.
 */
const SLOW_MS = 150;

/** Most of these nodes running at the same moment, from their recorded started → finished times. */
function mostAtOnce(nodes: Array<{ timings?: { startedAt?: string; finishedAt?: string } }>): number {
  const spans = nodes.map((node) => [Date.parse(node.timings!.startedAt!), Date.parse(node.timings!.finishedAt!)] as const);
  // Each span must have length, or overlaps could not be seen at all.
  expect(spans.every(([from, to]) => to - from >= 10)).toBe(true);
  return Math.max(...spans.map(([from]) => spans.filter(([s, f]) => s <= from && from < f).length));
}

const p95 = (values: number[]) => [...values].sort((a, b) => a - b)[Math.ceil(0.95 * values.length) - 1]!;

/** `count` one-node runs of `client`'s tenant, one after the other; the wait of each node (queued → started), ms. */
async function lightRuns(client: PodflowClient, count: number): Promise<number[]> {
  const waits: number[] = [];
  for (let i = 0; i < count; i++) {
    const { id } = await client.submitRun({ workflow: flatWorkflow('light', 1) });
    const run = await client.waitForRun(id, 20, 60_000);
    expect(run.status).toBe('succeeded');
    const [times] = await nodeTimes(client, id);
    waits.push(times!.startedAt - times!.queuedAt);
  }
  return waits;
}

/** Start times of every node of these runs, as one sorted list per tenant. */
async function startsOf(client: PodflowClient, runIds: string[]): Promise<number[]> {
  const all = await Promise.all(runIds.map((id) => nodeTimes(client, id)));
  return all.flat().map((t) => t.startedAt).sort((a, b) => a - b);
}

/** Of the executions started while both tenants had work waiting, the share of the first. */
function shareWhileBothWaited(first: number[], second: number[]): { first: number; second: number } {
  // Both had work waiting from when the later one started to when the earlier one ran out.
  const from = Math.max(first[0]!, second[0]!);
  const to = Math.min(first.at(-1)!, second.at(-1)!);
  const within = (starts: number[]) => starts.filter((t) => t >= from && t <= to).length;
  return { first: within(first), second: within(second) };
}

describe('fair dispatch (issue 13)', () => {
  let stack: Stack;
  let acme: PodflowClient;
  let globex: PodflowClient;

  afterEach(() => stack?.stop());

  async function start(env: Record<string, string> = {}, coordinatorEnv: Record<string, string> = {}, noopMs = NOOP_MS) {
    stack = await startStack({ workers: 1, workerEnv: { SANDBOX_DRIVER: 'noop', NOOP_DELAY_MS: String(noopMs), WORKER_CONCURRENCY: String(SLOTS) }, env, coordinatorEnv });
    acme = new PodflowClient({ url: stack.url, apiKey: API_KEY });
    globex = new PodflowClient({ url: stack.url, apiKey: 'other-key' });
  }

  it("serves a light tenant's runs as fast behind another tenant's flood of 2,000 nodes as on an idle system", async () => {
    await start();
    const idle = await lightRuns(globex, 20);
    const flood = await acme.submitRun({ workflow: flatWorkflow('flood', 2_000) });
    // The flood is queued and running before the light tenant comes.
    await waitUntil(async () => (await acme.getRun(flood.id, { nodeLimit: 1 })).status === 'running');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const busy = await lightRuns(globex, 20);
    // Measured under contention: the flood was still going when the last light run finished.
    expect((await acme.getRun(flood.id, { nodeLimit: 1 })).status).toBe('running');
    // A node of the light tenant waits for one slot to free (NOOP_MS / SLOTS on average, NOOP_MS
    // at most) behind at most one of the flood's, never behind the flood: within 2x of idle,
    // plus one execution's time for the slot.
    expect(p95(busy)).toBeLessThanOrEqual(2 * p95(idle) + NOOP_MS);
    const done = await acme.waitForRun(flood.id, 500, 120_000);
    expect(done.status).toBe('succeeded');
  }, 180_000);

  it('gives a tenant that splits its flood over 50 workflows no more than its share', async () => {
    await start();
    const split = await Promise.all(Array.from({ length: 50 }, (_, i) => acme.submitRun({ workflow: flatWorkflow(`split-${i}`, 30) })));
    const single = await globex.submitRun({ workflow: flatWorkflow('single', 500) });
    const runs = await Promise.all([...split.map((r) => acme.waitForRun(r.id, 250, 120_000)), globex.waitForRun(single.id, 250, 120_000)]);
    expect(runs.every((r) => r.status === 'succeeded')).toBe(true);
    const share = shareWhileBothWaited(await startsOf(acme, split.map((r) => r.id)), await startsOf(globex, [single.id]));
    // Equal weights: about one each per round, whatever the number of runs.
    expect(share.first + share.second).toBeGreaterThan(300);
    expect(share.first / share.second).toBeGreaterThan(0.8);
    expect(share.first / share.second).toBeLessThan(1.25);
  }, 180_000);

  it('gives tenants of weights 2 and 1 about 2:1 of the executions while both have work waiting', async () => {
    await start({ TENANT_WEIGHTS: 'acme=2' });
    const [gold, basic] = await Promise.all([acme.submitRun({ workflow: flatWorkflow('gold', 600) }), globex.submitRun({ workflow: flatWorkflow('basic', 600) })]);
    await Promise.all([acme.waitForRun(gold.id, 250, 120_000), globex.waitForRun(basic.id, 250, 120_000)]);
    const share = shareWhileBothWaited(await startsOf(acme, [gold.id]), await startsOf(globex, [basic.id]));
    expect(share.first + share.second).toBeGreaterThan(500);
    expect(share.first / share.second).toBeGreaterThan(1.7);
    expect(share.first / share.second).toBeLessThan(2.3);
  }, 180_000);

  it("holds a tenant past its cap in its runs' outboxes, moves it on as its results arrive, and never holds another tenant", async () => {
    // Cap 2 under 4 worker slots: at most 2 of acme's executions ever run at once.
    await start({ TENANT_MAX_IN_FLIGHT_BY_TENANT: 'acme=2', OUTBOX_SWEEP_MS: '60000' }, {}, SLOW_MS);
    const started = Date.now();
    const capped = await Promise.all(Array.from({ length: 5 }, (_, i) => acme.submitRun({ workflow: flatWorkflow(`capped-${i}`, 6) })));
    let heldSeen = 0;
    const watching = setInterval(() => void stack.redis.zcard(stack.keys.heldRuns('acme')).then((n) => (heldSeen = Math.max(heldSeen, n))), 5);
    try {
      const light = await lightRuns(globex, 3);
      const runs = await Promise.all(capped.map((r) => acme.waitForRun(r.id, 100, 120_000)));
      expect(runs.map((r) => r.status)).toEqual(Array(5).fill('succeeded'));
      // 30 executions, 2 at a time, 150 ms each: about 2.3 s. Sweeps are a minute apart here, so
      // only acme's own results can have released its held runs.
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(heldSeen).toBeGreaterThan(0);
      // globex was never held behind acme's cap.
      expect(p95(light)).toBeLessThan(1_000);
    } finally {
      clearInterval(watching);
    }
    // From the recorded times: never more than 2 of acme's executions at once (and 2 at times).
    const finished = await Promise.all(capped.map((r) => acme.getRun(r.id, { nodeLimit: 1000 })));
    const overlap = mostAtOnce(finished.flatMap((run) => Object.values(run.nodes)));
    expect(overlap).toBe(2);
    // Nothing counts once everything has finished; no run is left held.
    const inFlightKey = `${stack.bullPrefix('exec')}:dispatch:in-flight:acme`;
    await waitUntil(async () => (await stack.redis.zcard(inFlightKey)) === 0);
    expect(await stack.redis.zcard(stack.keys.heldRuns('acme'))).toBe(0);
  }, 180_000);

  it('applies a cap set on the tenant through the admin API, over the environment, from its next admission', async () => {
    const adminKey = `admin-${'k'.repeat(24)}`;
    await start({}, { PODFLOW_ADMIN_KEY: adminKey, TENANT_MAX_IN_FLIGHT_BY_TENANT: 'acme=4' }, SLOW_MS);
    const patched = await fetch(`${stack.url}/v1/admin/tenants/acme`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ maxInFlight: 1 }),
    });
    expect(await patched.json()).toMatchObject({ id: 'acme', maxInFlight: 1 });
    const { id } = await acme.submitRun({ workflow: flatWorkflow('one-at-a-time', 12) });
    const run = await acme.waitForRun(id, 100, 60_000);
    expect(run.status).toBe('succeeded');
    // One at a time, under 4 worker slots and the environment's 4.
    expect(mostAtOnce(Object.values(run.nodes))).toBe(1);
  }, 120_000);
});

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
