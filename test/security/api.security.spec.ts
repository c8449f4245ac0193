import { createHmac } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { startStack, type Stack } from '../support/stack';
import { call, coordinatorPid, eventually, expectHealthy, peakRssBytes, type ApiResponse } from './support/api';

// Issue 10 through the public API: node ids and keys that are Object.prototype members (item 5),
// expressions that try to exhaust memory (item 8), and bad input that used to give a 5xx (item 9).

const FILE_URL_SECRET = 'security-suite-file-url-secret';
const FILE_URL_TTL_SECONDS = 600;
const MAX_REQUEST_BYTES = 256 * 1024;

/** `levels` objects nested under key `k` around 1, as JSON text (built as text: the depth is the point). */
const nestedJson = (levels: number) => `${'{"k":'.repeat(levels)}1${'}'.repeat(levels)}`;

async function finishedRun(stack: Stack, response: ApiResponse): Promise<ApiResponse> {
  expect({ status: response.status, body: response.json }).toEqual({ status: 202, body: expect.objectContaining({ id: expect.any(String) }) });
  const id = response.json.id as string;
  return eventually(async () => {
    const run = await call(stack, 'GET', `/v1/runs/${id}`);
    return ['succeeded', 'failed', 'canceled'].includes(run.json?.status) ? run : undefined;
  }, `run ${id} to finish`, 90_000);
}

describe('API hardening (issue 10, items 5, 8, 9)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { FILE_URL_SECRET, FILE_URL_TTL_SECONDS: String(FILE_URL_TTL_SECONDS), MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES) } });
  });
  afterAll(() => stack?.stop());
  afterEach(() => expectHealthy(stack));

  describe('item 5: user keys never become object prototypes', () => {
    // JSON text, not object literals: `{ __proto__: ... }` in TypeScript sets a prototype.
    const definition = `{
      "id": "reserved-ids",
      "nodes": [
        { "id": "__proto__", "language": "python", "code": ${JSON.stringify('def main(args):\n    return {"__proto__": {"from": "python"}, "n": 1}\n')} },
        { "id": "constructor", "language": "typescript", "inputs": { "__proto__": "nodes.__proto__.output" },
          "code": ${JSON.stringify("export function main(args: Record<string, unknown>) { return { keys: Object.keys(args), own: Object.prototype.hasOwnProperty.call(args, '__proto__'), got: args['__proto__'] }; }")} },
        { "id": "toString", "language": "python",
          "code": ${JSON.stringify('def main(args):\n    return {"upstream": sorted(args["nodes"].keys()), "input": args["inputs"]["__proto__"]}\n')} }
      ],
      "edges": [ { "from": "__proto__", "to": "constructor" }, { "from": "constructor", "to": "toString" } ]
    }`;

    it('runs nodes named __proto__, constructor and toString, keeping __proto__ keys in inputs, args and outputs', async () => {
      const run = await finishedRun(stack, await call(stack, 'POST', '/v1/runs', { body: `{"workflow": ${definition}, "inputs": {"__proto__": {"k": "v"}}}` }));
      expect({ status: run.json.status, error: run.json.error }).toEqual({ status: 'succeeded', error: undefined });
      expect(Object.keys(run.json.nodes)).toEqual(['__proto__', 'constructor', 'toString']);
      expect(JSON.stringify(run.json.inputs)).toBe('{"__proto__":{"k":"v"}}');
      expect(JSON.stringify(run.json.nodes.__proto__.output)).toBe('{"__proto__":{"from":"python"},"n":1}');
      expect(JSON.stringify(run.json.nodes.constructor.output)).toBe('{"keys":["__proto__"],"own":true,"got":{"__proto__":{"from":"python"},"n":1}}');
      expect(JSON.stringify(run.json.outputs)).toBe('{"toString":{"upstream":["__proto__","constructor"],"input":{"k":"v"}}}');
    });

    it('passes __proto__ args to an execution and registers such a workflow', async () => {
      const code = "function main(args) { return { keys: Object.keys(args), value: args['__proto__'] }; }";
      const execution = await call(stack, 'POST', '/v1/executions?wait=true', { body: `{"language": "javascript", "code": ${JSON.stringify(code)}, "args": {"__proto__": {"deep": true}, "plain": 1}}` });
      expect(execution.status).toBe(200);
      expect(JSON.stringify(execution.json.output)).toBe('{"keys":["__proto__","plain"],"value":{"deep":true}}');
      const registered = await call(stack, 'POST', '/v1/workflows', { body: definition });
      expect(registered.status).toBe(201);
      const read = await call(stack, 'GET', '/v1/workflows/reserved-ids');
      expect(read.json.definition.nodes.map((node: { id: string }) => node.id)).toEqual(['__proto__', 'constructor', 'toString']);
    });

    it('signs files only for a node the run has: constructor, toString, __proto__ elsewhere are 404', async () => {
      const plain = await finishedRun(stack, await call(stack, 'POST', '/v1/runs', { body: { workflow: { id: 'plain', nodes: [{ id: 'a', language: 'python', code: 'def main(args):\n    return {}\n' }] } } }));
      for (const nodeId of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
        const signed = await call(stack, 'POST', `/v1/runs/${plain.json.id}/nodes/${nodeId}/files/sign`, { body: {} });
        expect({ nodeId, status: signed.status, code: signed.json?.error?.code }).toEqual({ nodeId, status: 404, code: 'NOT_FOUND' });
      }
    });
  });

  describe('item 8: expressions cannot exhaust memory', () => {
    it('fails $pad("", 200000000) fast with INPUT_BINDING_FAILED naming the node and the limit, without the coordinator growing', async () => {
      const pid = coordinatorPid(stack);
      const peakBefore = peakRssBytes(pid);
      const run = await finishedRun(
        stack,
        await call(stack, 'POST', '/v1/runs', { body: { workflow: { id: 'pad-bomb', nodes: [{ id: 'victim', language: 'python', code: 'def main(args):\n    return {}\n', inputs: { big: '$pad("", 200000000)' } }] } } }),
      );
      expect(run.json.status).toBe('failed');
      expect(run.json.error).toMatchObject({ code: 'INPUT_BINDING_FAILED', nodeId: 'victim', message: expect.stringMatching(/input binding "big" of node "victim".*EXPRESSION_MAX_BYTES/) });
      // It never ran: the binding failed before a job existed, so no worker received 200 MB either.
      expect(run.json.nodes.victim.attempts).toBe(0);
      // 200 MB would show in the peak resident size; the refusal allocates nothing of that order.
      expect(peakRssBytes(pid) - peakBefore).toBeLessThan(100 * 1024 * 1024);
    });

    it('fails doubling strings in an edge condition and objects in the workflow output, naming where', async () => {
      const code = 'def main(args):\n    return {"x": "ab"}\n';
      const doubling = '($f := function($s, $n) { $n = 0 ? $s : $f($s & $s, $n - 1) }; $length($f(nodes.a.output.x, 40)) > 0)';
      const edge = await finishedRun(stack, await call(stack, 'POST', '/v1/runs', { body: { workflow: { id: 'when-bomb', nodes: [{ id: 'a', language: 'python', code }, { id: 'b', language: 'python', code }], edges: [{ from: 'a', to: 'b', when: doubling }] } } }));
      expect(edge.json.error).toMatchObject({ code: 'INPUT_BINDING_FAILED', message: expect.stringMatching(/"when" of edge a→b .*EXPRESSION_MAX_BYTES/) });
      const output = '($f := function($x, $n) { $n = 0 ? $x : $f({ "l": $x, "r": $x }, $n - 1) }; { "tree": $f(nodes.a.output, 60) })';
      const run = await finishedRun(stack, await call(stack, 'POST', '/v1/runs', { body: { workflow: { id: 'output-bomb', output, nodes: [{ id: 'a', language: 'python', code }] } } }));
      expect(run.json.error).toMatchObject({ code: 'INPUT_BINDING_FAILED', message: expect.stringMatching(/^workflow output: .*EXPRESSION_MAX_BYTES/) });
    });
  });

  describe('item 9: bad input is a 4xx, never a 5xx', () => {
    it('answers 413 to a body over MAX_REQUEST_BYTES and 400 to a Content-Encoding it cannot decode', async () => {
      const big = await call(stack, 'POST', '/v1/runs', { body: { workflowId: 'x', inputs: { blob: 'a'.repeat(MAX_REQUEST_BYTES) } } });
      expect({ status: big.status, code: big.json?.error?.code, message: big.json?.error?.message }).toEqual({ status: 413, code: 'PAYLOAD_TOO_LARGE', message: expect.stringContaining('MAX_REQUEST_BYTES') });
      const bomb = await call(stack, 'POST', '/v1/runs', { body: gzipSync(JSON.stringify({ workflowId: 'x', inputs: { blob: 'a'.repeat(4 * MAX_REQUEST_BYTES) } })), headers: { 'content-encoding': 'gzip' } });
      expect(bomb.status).toBe(413);
      for (const [encoding, body] of [['x-unknown', '{}'], ['gzip', '{"not": "gzip"}']] as const) {
        const bad = await call(stack, 'POST', '/v1/runs', { body, headers: { 'content-encoding': encoding } });
        expect({ encoding, status: bad.status, code: bad.json?.error?.code }).toEqual({ encoding, status: 400, code: 'BAD_REQUEST' });
      }
    });

    it('refuses JSON nested deeper than 64 levels with a 400 naming the field, and runs 64 levels in Python and JavaScript', async () => {
      const runs = await call(stack, 'POST', '/v1/runs', { body: `{"workflowId": "x", "inputs": ${nestedJson(2000)}}` });
      expect({ status: runs.status, message: runs.json?.error?.message }).toEqual({ status: 400, message: expect.stringContaining('field "inputs" nests deeper than 64 levels') });
      const exec = await call(stack, 'POST', '/v1/executions?wait=true', { body: `{"language": "python", "code": "def main(args): return {}", "args": {"a": ${nestedJson(100)}}}` });
      expect({ status: exec.status, message: exec.json?.error?.message }).toEqual({ status: 400, message: expect.stringContaining('field "args" nests deeper than 64 levels') });
      const depthOf = {
        python: 'def depth(v):\n    return 1 + max([depth(x) for x in v.values()] or [0]) if isinstance(v, dict) else 0\n\ndef main(args):\n    return {"depth": depth(args["a"])}\n',
        javascript: 'function depth(v) { return v && typeof v === "object" ? 1 + Math.max(0, ...Object.values(v).map(depth)) : 0; }\nfunction main(args) { return { depth: depth(args.a) }; }',
      };
      for (const [language, code] of Object.entries(depthOf)) {
        const deepest = await call(stack, 'POST', '/v1/executions?wait=true', { body: `{"language": "${language}", "code": ${JSON.stringify(code)}, "args": {"a": ${nestedJson(63)}}}` });
        expect({ language, status: deepest.status, output: deepest.json?.output }).toEqual({ language, status: 200, output: { depth: 63 } });
      }
    });

    it('fails user code that returns data nested 5000 levels with OUTPUT_INVALID, in Python and JavaScript', async () => {
      const deep = {
        python: 'def main(args):\n    d = {}\n    for _ in range(5000):\n        d = {"k": d}\n    return d\n',
        javascript: 'function main() { let d = {}; for (let i = 0; i < 5000; i++) d = { k: d }; return d; }',
      };
      for (const [language, code] of Object.entries(deep)) {
        const result = await call(stack, 'POST', '/v1/executions?wait=true', { body: { language, code } });
        expect({ language, status: result.json?.status, code: result.json?.error?.code }).toEqual({ language, status: 'failed', code: 'OUTPUT_INVALID' });
      }
    });

    it('signs files for at most FILE_URL_TTL_SECONDS, and refuses a correctly signed URL that lives longer', async () => {
      const code = 'def main(args):\n    open("report.txt", "w").write("tenant data")\n    return {}\n';
      const run = await finishedRun(stack, await call(stack, 'POST', '/v1/runs', { body: { workflow: { id: 'files', nodes: [{ id: 'writer', language: 'python', code }] } } }));
      expect(run.json.status).toBe('succeeded');
      const tooLong = await call(stack, 'POST', `/v1/runs/${run.json.id}/nodes/writer/files/sign`, { body: { ttlSeconds: FILE_URL_TTL_SECONDS + 1 } });
      expect({ status: tooLong.status, message: tooLong.json?.error?.message }).toEqual({ status: 400, message: expect.stringContaining(`at most ${FILE_URL_TTL_SECONDS} (FILE_URL_TTL_SECONDS)`) });
      const signed = await call(stack, 'POST', `/v1/runs/${run.json.id}/nodes/writer/files/sign`, { body: { ttlSeconds: 60 } });
      expect(signed.status).toBe(200);
      const url = new URL(signed.json.elements[0].download_url as string);
      expect(await (await fetch(url)).text()).toBe('tenant data');
      // Whoever holds FILE_URL_SECRET (it used to be readable from every sandbox) cannot mint a URL for years.
      const key = decodeURIComponent(url.pathname.replace(/^\/v1\/files\//, ''));
      const expires = Math.floor(Date.now() / 1000) + 10 * 365 * 24 * 3600;
      const signature = createHmac('sha256', FILE_URL_SECRET).update(`${key}\n${expires}`).digest('hex');
      const forged = await fetch(`${url.origin}${url.pathname}?expires=${expires}&signature=${signature}`);
      expect({ status: forged.status, body: await forged.text() }).toEqual({ status: 401, body: expect.stringContaining('further ahead than FILE_URL_TTL_SECONDS') });
    });
  });
});
