import { startStack, type Stack } from '../support/stack';

// Issue 11: a 10,000-node workflow (the default MAX_NODES_PER_RUN) runs end to end on the noop
// driver, and the API still answers for it: nodes page in definition order.
const LEAVES = 9_999;

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
