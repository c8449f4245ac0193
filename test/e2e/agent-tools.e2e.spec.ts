import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { API_KEY, startStack, type Stack } from '../support/stack';

// Issue 15: code-runner tools for AI agents, as an MCP server (the SDK's own client calls it here)
// and as plain HTTP. Each call runs in a fresh sandbox as the key's tenant; main may return any
// JSON value, checked against a result schema when one is given.
describe('agent tools (issue 15)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 1 });
  });
  afterAll(() => stack?.stop());

  async function connect(key?: string): Promise<Client> {
    const client = new Client({ name: 'podflow-e2e-agent', version: '1.0.0' });
    const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
    await client.connect(new StreamableHTTPClientTransport(new URL(`${stack.url}/v1/mcp`), { requestInit: { headers } }));
    return client;
  }

  type ToolResult = { ok: boolean; result?: unknown; error?: { code: string; message: string; path?: string }; stdout: string; stderr: string; files: Array<{ path: string; download_url: string }>; runId: string };
  async function call(client: Client, name: string, args: Record<string, unknown>): Promise<{ isError: boolean; result: ToolResult }> {
    const answer = await client.callTool({ name, arguments: args });
    return { isError: answer.isError === true, result: answer.structuredContent as ToolResult };
  }

  it('lists the three tools with JSON Schemas, and returns a bare list and a string as such, with stdout and files', async () => {
    const client = await connect(API_KEY);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((tool) => tool.name).sort()).toEqual(['execute-javascript', 'execute-python', 'execute-typescript']);
      const python = tools.find((tool) => tool.name === 'execute-python')!;
      expect(python.inputSchema).toMatchObject({ type: 'object', required: ['code'], properties: { code: { type: 'string' }, resultSchema: { type: 'object' } } });
      expect(python.outputSchema).toMatchObject({ type: 'object', properties: { ok: { type: 'boolean' }, files: { type: 'array' } } });

      const list = await call(client, 'execute-python', {
        code: 'def main(args):\n    print("doubling")\n    with open("out.txt", "w") as f:\n        f.write("done")\n    return [n * 2 for n in args["numbers"]]\n',
        args: { numbers: [1, 2, 3] },
      });
      expect(list.isError).toBe(false);
      expect(list.result).toMatchObject({ ok: true, result: [2, 4, 6], stdout: 'doubling\n' });
      expect(list.result.files.map((file) => file.path)).toEqual(['out.txt']);
      expect(await (await fetch(list.result.files[0]!.download_url)).text()).toBe('done');

      const text = await call(client, 'execute-javascript', { code: 'function main(args) { return `hello ${args.name}`; }', args: { name: 'agent' } });
      expect(text.result).toMatchObject({ ok: true, result: 'hello agent' });
      const typed = await call(client, 'execute-typescript', { code: 'function main(): number | null { return null; }' });
      expect(typed.result).toMatchObject({ ok: true, result: null });
      // Names are not looked up on an object's prototype: "__proto__" is a tool like "nope", unknown.
      for (const name of ['nope', '__proto__', 'toString']) {
        expect({ name, answer: await client.callTool({ name, arguments: {} }) }).toEqual({ name, answer: { isError: true, content: [{ type: 'text', text: expect.stringMatching(new RegExp(`Tool ${name} not found$`)) }] } });
      }
    } finally {
      await client.close();
    }
  });

  it('gives OUTPUT_INVALID naming the path when the result breaks its schema, and the code error when main throws', async () => {
    const client = await connect(API_KEY);
    try {
      const resultSchema = { type: 'object', required: ['items'], properties: { items: { type: 'array', items: { type: 'object', properties: { price: { type: 'number' } } } } } };
      const bad = await call(client, 'execute-python', { code: 'def main(args):\n    return {"items": [{"price": 1}, {"price": "2"}]}\n', resultSchema });
      expect(bad.isError).toBe(true);
      expect(bad.result.ok).toBe(false);
      expect(bad.result.error).toMatchObject({ code: 'OUTPUT_INVALID', path: '/items/1/price' });
      expect(bad.result.error!.message).toMatch(/^the result at \/items\/1\/price must be number/);
      const good = await call(client, 'execute-python', { code: 'def main(args):\n    return {"items": [{"price": 1}, {"price": 2.5}]}\n', resultSchema });
      expect(good.result).toMatchObject({ ok: true, result: { items: [{ price: 1 }, { price: 2.5 }] } });

      const thrown = await call(client, 'execute-javascript', { code: 'function main() { throw new RangeError("no such page"); }' });
      expect(thrown.isError).toBe(true);
      expect(thrown.result.error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', message: expect.stringContaining('no such page') });

      // A schema that cannot be checked is refused before anything runs.
      const refused = await client.callTool({ name: 'execute-python', arguments: { code: 'def main(args):\n    return 1\n', resultSchema: { type: 'no-such-type' } } });
      expect(refused.isError).toBe(true);
      expect(JSON.stringify(refused.content)).toContain('BAD_REQUEST: resultSchema is not a JSON Schema podflow can check');
    } finally {
      await client.close();
    }
  });

  it('refuses a client without a key, and keeps tenants apart: one tenant\'s call never sees another\'s files', async () => {
    await expect(connect()).rejects.toThrow(/401|UNAUTHENTICATED|Unauthorized/i);
    const acme = await connect(API_KEY);
    const globex = await connect('other-key');
    try {
      const wrote = await call(acme, 'execute-python', { code: 'def main(args):\n    open("secret.txt", "w").write("acme only")\n    return "written"\n' });
      expect(wrote.result).toMatchObject({ ok: true, result: 'written' });
      const look = 'import os\n\ndef main(args):\n    return {"home": sorted(os.listdir(".")), "tmp": sorted(os.listdir("/tmp"))}\n';
      for (const client of [globex, acme]) {
        const seen = await call(client, 'execute-python', { code: look });
        expect(seen.result).toMatchObject({ ok: true, result: { home: [], tmp: [] } });
      }
      // The run behind a call is the caller's: the other tenant cannot read it.
      const foreign = await fetch(`${stack.url}/v1/runs/${wrote.result.runId}`, { headers: { authorization: 'Bearer other-key' } });
      expect(foreign.status).toBe(404);
    } finally {
      await Promise.all([acme.close(), globex.close()]);
    }
  });

  it("a tool call's run is marked as one and is never the upstream of a tenant workflow that shares the tool's name", async () => {
    const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
    const post = async (path: string, body: unknown) => {
      const response = await fetch(`${stack.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
      return { status: response.status, body: (await response.json()) as { ok?: boolean; runId?: string; error?: { code: string; message: string; details?: unknown } } };
    };
    // The tenant's own workflow named like the tool, whose first node has the tool run's node id.
    const workflow = {
      id: 'execute-python',
      nodes: [
        { id: 'main', language: 'python', code: 'def main(args):\n    return {"mine": True}\n' },
        { id: 'report', language: 'python', code: 'def main(args):\n    return args["nodes"]["main"]["output"]\n' },
      ],
      edges: [{ from: 'main', to: 'report' }],
    };
    expect((await post('/v1/workflows', workflow)).status).toBe(201);
    const called = await post('/v1/tools/execute-python', { code: 'def main(args):\n    return {"mine": False}\n' });
    expect(called.body.ok).toBe(true);
    const run = (await (await fetch(`${stack.url}/v1/runs/${called.body.runId}`, { headers })).json()) as { workflowId: string; tool?: string };
    expect(run).toMatchObject({ workflowId: 'execute-python', tool: 'execute-python' });

    // No run of the tenant's workflow has succeeded: the tool call's run does not stand in for one.
    const test = await post('/v1/workflows/execute-python/nodes/report/test', {});
    expect(test.status).toBe(409);
    expect(test.body.error).toMatchObject({ code: 'CONFLICT', details: { upstream: ['main'] } });
    const named = await post('/v1/workflows/execute-python/nodes/report/test', { fromRun: called.body.runId });
    expect(named.status).toBe(400);
    expect(named.body.error!.message).toBe(`fromRun "${called.body.runId}" is an agent tool call (execute-python), not a run of your workflow "execute-python"; name a run of the workflow, or leave fromRun out for its latest succeeded one`);
    // A failed tool call is not resumed either: the new run would be one of the tenant's "execute-python".
    const failed = await post('/v1/tools/execute-python', { code: 'def main(args):\n    raise ValueError("no")\n' });
    expect(failed.body.ok).toBe(false);
    const resumed = await post(`/v1/runs/${failed.body.runId}/resume`, {});
    expect({ status: resumed.status, error: resumed.body.error }).toEqual({
      status: 409,
      error: expect.objectContaining({ code: 'CONFLICT', message: `run "${failed.body.runId}" is a call of the agent tool execute-python; a tool call is not resumed (it would become a run of a workflow named like the tool): call the tool again` }),
    });
  });

  it('serves the same tools over plain HTTP', async () => {
    const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
    const listed = (await (await fetch(`${stack.url}/v1/tools`, { headers })).json()) as { tools: Array<{ name: string }> };
    expect(listed.tools.map((tool) => tool.name)).toEqual(['execute-python', 'execute-javascript', 'execute-typescript']);
    const response = await fetch(`${stack.url}/v1/tools/execute-python`, { method: 'POST', headers, body: JSON.stringify({ code: 'def main(args):\n    return True\n' }) });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ ok: true, result: true });
    const unknown = await fetch(`${stack.url}/v1/tools/execute-ruby`, { method: 'POST', headers, body: JSON.stringify({ code: 'x' }) });
    expect(unknown.status).toBe(404);
    const noCode = await fetch(`${stack.url}/v1/tools/execute-python`, { method: 'POST', headers, body: JSON.stringify({ args: {} }) });
    expect(noCode.status).toBe(400);
    expect(((await noCode.json()) as { error: { message: string } }).error.message).toMatch(/^execute-python: code:/);
  });
});
