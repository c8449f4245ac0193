import { API_KEY, startStack, type Stack } from '../support/stack';

// Issue 15: test-run one node. A builder edits the second node and runs it alone, in a real
// sandbox, with the upstream values of the latest succeeded run (or sample values), without
// running the workflow again. Test runs are recorded apart from production runs.
describe('test-run one node (issue 15)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 1 });
  });
  afterAll(() => stack?.stop());

  // fetch draws a random token (a second execution would draw another) and writes it to a file;
  // shape reports what it sees of fetch.
  const definition = (id: string) => ({
    id,
    nodes: [
      {
        id: 'fetch',
        language: 'python',
        code: 'import secrets\n\ndef main(args):\n    token = secrets.token_hex(8)\n    with open("token.txt", "w") as f:\n        f.write(token)\n    return {"token": token, "city": args["inputs"]["city"]}\n',
      },
      { id: 'shape', language: 'javascript', code: 'function main(args) { return { v: 1 }; }' },
      { id: 'mail', language: 'python', code: 'def main(args):\n    return {}\n' },
    ],
    edges: [
      { from: 'fetch', to: 'shape' },
      { from: 'shape', to: 'mail' },
    ],
  });
  // The builder's unsaved edit of shape: what it sees of its upstream, and its inputs.
  const edited = 'function main(args) {\n  const fetch = args.nodes.fetch;\n  return { token: fetch.output.token, files: fetch.files.elements.map((f) => f.path), inputs: args.inputs, edited: true };\n}\n';

  async function post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> & { error?: { code: string; message: string; details?: unknown } } }> {
    const response = await fetch(`${stack.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as never };
  }

  it("runs the edited second node alone with the first node's real output and files; the test run is not listed and never becomes the upstream", async () => {
    expect((await post('/v1/workflows', definition('shop'))).status).toBe(201);
    const production = await stack.client.waitForRun((await stack.client.submitRun({ workflowId: 'shop', inputs: { city: 'Oslo' } })).id, 100, 60_000);
    expect(production.status).toBe('succeeded');
    const token = production.nodes.fetch!.output!.token;

    const accepted = await post('/v1/workflows/shop/nodes/shape/test', { code: edited });
    expect(accepted).toMatchObject({ status: 202, body: { nodeId: 'shape', upstreamFrom: production.id, samples: [] } });
    const test = await stack.client.waitForRun(accepted.body.id as string, 100, 60_000);
    expect({ status: test.status, test: test.test }).toEqual({ status: 'succeeded', test: { nodeId: 'shape', upstreamFrom: production.id } });
    expect(test.nodes.shape).toMatchObject({ status: 'succeeded', attempts: 1, output: { token, files: ['token.txt'], inputs: { city: 'Oslo' }, edited: true } });
    // The upstream node did not run again (same token, kept from the production run); nothing downstream ran.
    expect(test.nodes.fetch).toMatchObject({ status: 'succeeded', keptFrom: production.id, output: { token } });
    expect(test.nodes.mail).toBeUndefined();
    expect(test.outputs).toEqual({ shape: expect.objectContaining({ edited: true }) });

    // Apart from production runs: not listed, and a second test still reads the production run.
    const listed = (await (await fetch(`${stack.url}/v1/runs?workflowId=shop`, { headers: { authorization: `Bearer ${API_KEY}` } })).json()) as { runs: Array<{ id: string }> };
    expect(listed.runs.map((r) => r.id)).toEqual([production.id]);
    const again = await post('/v1/workflows/shop/nodes/shape/test', { code: edited, inputs: { city: 'Bergen' } });
    expect(again.body.upstreamFrom).toBe(production.id);
    const second = await stack.client.waitForRun(again.body.id as string, 100, 60_000);
    expect(second.nodes.shape!.output).toMatchObject({ token, inputs: { city: 'Bergen' } });
    // A test run is no source of upstream values, even when named.
    const fromTest = await post('/v1/workflows/shop/nodes/shape/test', { fromRun: test.id, nodes: { fetch: { output: {} } } });
    expect(fromTest.status).toBe(400);
    expect(fromTest.body.error?.message).toContain(`fromRun "${test.id}" is a test run of node "shape"`);
  });

  it('answers 409 naming the upstream node when no run has its output, and uses sample values when given', async () => {
    expect((await post('/v1/workflows', definition('fresh'))).status).toBe(201);
    const refused = await post('/v1/workflows/fresh/nodes/shape/test', { code: edited });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({
      code: 'CONFLICT',
      message: 'node "shape" reads the output of "fetch", and no run of workflow "fresh" has succeeded yet; run "fetch" first (run the workflow), or pass sample values as nodes.fetch.output',
      details: { upstream: ['fetch'] },
    });

    const sampled = await post('/v1/workflows/fresh/nodes/shape/test', {
      code: 'function main(args) { return { seen: args.nodes.fetch.output, inputs: args.inputs }; }',
      nodes: { fetch: { output: { token: 'sample-token' } } },
      inputs: { city: 'Turku' },
    });
    expect(sampled).toMatchObject({ status: 202, body: { samples: ['fetch'] } });
    expect(sampled.body.upstreamFrom).toBeUndefined();
    const run = await stack.client.waitForRun(sampled.body.id as string, 100, 60_000);
    expect(run.nodes.shape).toMatchObject({ status: 'succeeded', output: { seen: { token: 'sample-token' }, inputs: { city: 'Turku' } } });
    expect(run.nodes.fetch).toMatchObject({ keptFrom: 'sample' });
  });

  it('tests a node of an unsaved inline definition, and refuses what it cannot run with a 4xx that says why', async () => {
    const unsaved = definition('draft');
    const root = await post('/v1/workflows/draft/nodes/fetch/test', { workflow: unsaved, inputs: { city: 'Lund' } });
    expect(root).toMatchObject({ status: 202, body: { samples: [] } });
    const run = await stack.client.waitForRun(root.body.id as string, 100, 60_000);
    expect(run.nodes.fetch).toMatchObject({ status: 'succeeded', output: { city: 'Lund' } });
    expect(run.nodes.fetch!.files!.elements.map((f) => f.path)).toEqual(['token.txt']);

    const unknownNode = await post('/v1/workflows/draft/nodes/shpae/test', { workflow: unsaved });
    expect({ status: unknownNode.status, message: unknownNode.body.error?.message }).toEqual({
      status: 404,
      message: 'workflow "draft" has no node "shpae" (its nodes: "fetch", "shape", "mail")',
    });
    const notUpstream = await post('/v1/workflows/draft/nodes/shape/test', { workflow: unsaved, nodes: { mail: { output: {} } } });
    expect(notUpstream.status).toBe(400);
    expect(notUpstream.body.error?.message).toBe('nodes.mail: node "mail" is not upstream of "shape" (its upstream nodes: "fetch"); give sample outputs for those only');
    const otherId = await post('/v1/workflows/other/nodes/fetch/test', { workflow: unsaved });
    expect(otherId.status).toBe(400);
    const emptyCode = await post('/v1/workflows/draft/nodes/fetch/test', { workflow: unsaved, code: ' ' });
    expect(emptyCode.status).toBe(400);
    expect(emptyCode.body.error?.message).toContain('is empty');
  });
});
