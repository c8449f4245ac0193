import { startStack, type Stack } from '../support/stack';

// Issue 11: a 10,000-node workflow (the default MAX_NODES_PER_RUN) runs end to end on the noop
// driver, and the API still answers for it: nodes page in definition order.
const LEAVES = 9_999;

/** How many of the run's nodes have each status, read a page of 1,000 at a time through the API. */
async function statusCounts(stack: Stack, runId: string): Promise<Record<string, number>> {
  const counts = new Map<string, number>();
  let cursor: string | undefined;
  do {
    const page = await stack.client.getRun(runId, { nodeLimit: 1000, ...(cursor ? { nodeCursor: cursor } : {}) });
    for (const node of Object.values(page.nodes)) counts.set(node.status, (counts.get(node.status) ?? 0) + 1);
    cursor = page.nextNodeCursor;
  } while (cursor);
  return Object.fromEntries(counts);
}

describe('large runs (issue 11)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 1, workerEnv: { SANDBOX_DRIVER: 'noop', WORKER_CONCURRENCY: '32' } });
  });
  afterAll(() => stack?.stop());

  it('runs a 10,000-node fan-out to the end and pages through its nodes', async () => {
    const code = 'def main(args): return {}';
    const workflow = {
      id: 'ten-thousand',
      nodes: [{ id: 'root', language: 'python', code }, ...Array.from({ length: LEAVES }, (_, i) => ({ id: `leaf${i}`, language: 'python', code }))],
      edges: Array.from({ length: LEAVES }, (_, i) => ({ from: 'root', to: `leaf${i}` })),
    };
    const { id } = await stack.client.submitRun({ workflow });
    const run = await stack.client.waitForRun(id, 500, 300_000);
    expect({ status: run.status, error: run.error }).toEqual({ status: 'succeeded', error: undefined });
    expect(run.nodesTotal).toBe(LEAVES + 1);
    expect(Object.keys(run.nodes)).toHaveLength(1000);
    expect(Object.keys(run.nodes).slice(0, 2)).toEqual(['root', 'leaf0']);

    // Page through every node, in definition order.
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await stack.client.getRun(id, { nodeLimit: 1000, ...(cursor ? { nodeCursor: cursor } : {}) });
      for (const [nodeId, node] of Object.entries(page.nodes)) {
        expect({ nodeId, status: node.status, attempts: node.attempts }).toEqual({ nodeId, status: 'succeeded', attempts: 1 });
        seen.push(nodeId);
      }
      cursor = page.nextNodeCursor;
    } while (cursor);
    expect(seen).toEqual(workflow.nodes.map((node) => node.id));

    // Exactly the nodes asked for; an unknown one is a 400 naming it.
    const some = await stack.client.getRun(id, { nodes: ['leaf9998', 'root'] });
    expect(Object.keys(some.nodes)).toEqual(['leaf9998', 'root']);
    await expect(stack.client.getRun(id, { nodes: ['nope'] })).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('"nope"') });
    // Outputs: every leaf's (none of them has a successor).
    expect(Object.keys(run.outputs ?? {})).toHaveLength(LEAVES);
  }, 360_000);

  it('refuses a workflow over MAX_NODES_PER_RUN with a 400 naming the limit', async () => {
    const nodes = Array.from({ length: 10_001 }, (_, i) => ({ id: `n${i}`, language: 'python', code: 'def main(args): return {}' }));
    await expect(stack.client.submitRun({ workflow: { id: 'too-big', nodes } })).rejects.toMatchObject({ code: 'INVALID_WORKFLOW', message: expect.stringContaining('the limit is 10000') });
  });
});

// A large run's end goes a page of FANOUT_PAGE nodes per step (README "A large run's end a page
// at a time"): through the API it is one cancel, answered once the last page is applied.
describe('canceling a large run (issue 11)', () => {
  let stack: Stack;
  beforeAll(async () => {
    // No worker: every node of the run stays queued until the cancel.
    stack = await startStack({ workers: 0 });
  });
  afterAll(() => stack?.stop());

  it('cancels a run of 10,000 queued nodes in pages: the run and every node end canceled, and the event stream ends with the run after every node', async () => {
    const nodes = Array.from({ length: 10_000 }, (_, i) => ({ id: `n${i}`, language: 'python', code: 'def main(args): return {}' }));
    const { id } = await stack.client.submitRun({ workflow: { id: 'cancel-big', nodes } });
    // Queued: the run's roots are started a page at a time too.
    for (let page = await stack.client.getRun(id, { nodes: ['n9999'] }); page.nodes.n9999?.status !== 'queued'; page = await stack.client.getRun(id, { nodes: ['n9999'] })) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Answered once the end is applied, or after 5 s with the run still ending (a slow machine).
    expect(await stack.client.cancelRun(id)).toEqual({ id, status: expect.stringMatching(/^(canceled|running)$/) });
    expect(await stack.client.waitForRun(id, 200, 60_000)).toMatchObject({ status: 'canceled', error: { code: 'CANCELED' } });

    expect(await statusCounts(stack, id)).toEqual({ canceled: 10_000 });

    const events: Array<{ type: string; status: string }> = [];
    for await (const event of stack.client.events(id)) events.push(event);
    expect(events.filter((event) => event.type === 'run').map((event) => event.status)).toEqual(['running', 'canceled']);
    expect(events[events.length - 1]).toMatchObject({ type: 'run', status: 'canceled' });
    expect(events.filter((event) => event.type === 'node' && event.status === 'canceled')).toHaveLength(10_000);
  }, 120_000);

  it('stores a record only for the nodes something touched: a new fan-out of 3,000 writes its root; the API shows the others pending, and a cancel ends them all', async () => {
    const leaves = Array.from({ length: 3_000 }, (_, i) => ({ id: `leaf${i}`, language: 'python', code: 'def main(args): return {}' }));
    const workflow = { id: 'lazy-records', nodes: [{ id: 'root', language: 'python', code: 'def main(args): return {}' }, ...leaves], edges: leaves.map(({ id }) => ({ from: 'root', to: id })) };
    const { id } = await stack.client.submitRun({ workflow });
    expect((await stack.redis.hkeys(stack.keys.nodes(id))).sort()).toEqual([':created', 'root']);

    expect(await statusCounts(stack, id)).toEqual({ queued: 1, pending: 3_000 });
    expect((await stack.client.getRun(id, { nodes: ['leaf2999'] })).nodes.leaf2999).toMatchObject({ status: 'pending', attempts: 0 });

    await stack.client.cancelRun(id);
    expect(await stack.client.waitForRun(id, 200, 60_000)).toMatchObject({ status: 'canceled' });
    expect(await statusCounts(stack, id)).toEqual({ canceled: 3_001 });
    expect(await stack.redis.hlen(stack.keys.nodes(id))).toBe(3_002);
  }, 120_000);
});
