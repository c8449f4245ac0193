import { execute, startStack, type Stack } from '../support/stack';
import { call, coordinatorPid, expectHealthy, peakRssBytes, resetPeakRss, sendRaw } from './support/api';

// Issue 10 review, finding 1: request bodies are read only for a known tenant, YAML only where a
// definition is posted and within MAX_YAML_BYTES and a token bound, and checking JSON depth costs
// nothing per scalar. Each test measures the coordinator's peak resident size from a reset.

const MAX_YAML_BYTES = 1024 * 1024;
const MiB = 1024 * 1024;
/** `x: [1,1,...]` (YAML) or `{"x":[1,1,...]}` (JSON) of about `bytes` bytes: one token or value per 2 bytes. */
const flatYaml = (bytes: number) => Buffer.from(`x: [${'1,'.repeat(bytes / 2)}1]`);
const flatJson = (bytes: number) => Buffer.from(`{"x":[${'1,'.repeat(bytes / 2)}1]}`);

describe('request bodies (issue 10 review, finding 1)', () => {
  let stack: Stack;
  let pid: number;
  beforeAll(async () => {
    // MAX_REQUEST_BYTES is the default (16 MiB): what an attacker gets on a default install.
    stack = await startStack();
    pid = coordinatorPid(stack);
  });
  afterAll(() => stack?.stop());
  afterEach(() => expectHealthy(stack));

  it('refuses args of more top-level keys than a node takes bindings, before parsing one (100,000 held the coordinator 19 s; red-team finding)', async () => {
    const args = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, 0]));
    const code = 'def main(args):\n    return {"n": len(args)}\n';
    const started = Date.now();
    const execution = await call(stack, 'POST', '/v1/executions', { body: { language: 'python', code, args } });
    const tool = await call(stack, 'POST', '/v1/tools/execute-python', { body: { code, args } });
    const elapsed = Date.now() - started;
    for (const [what, answer] of [['execution request', execution], ['execute-python', tool]] as const) {
      expect({ status: answer.status, code: answer.json?.error?.code, message: answer.json?.error?.message }).toEqual({
        status: 400,
        code: 'BAD_REQUEST',
        message: `${what}: args has 100000 top-level keys; at most 1000 (each is handed to main as an input binding of its own): nest a larger map under one key`,
      });
    }
    // Parsing them took 19 s; counting them, the time to read 1.3 MB twice.
    expect(elapsed).toBeLessThan(5_000);
    // A thousand still run, each key its own argument.
    const thousand = Object.fromEntries(Array.from({ length: 1_000 }, (_, i) => [`k${i}`, i]));
    const ran = await execute(stack, 'python', code, thousand);
    expect({ status: ran.status, output: ran.output }).toEqual({ status: 'succeeded', output: { n: 1000 } });
  });

  it('answers 401 to a 14 MB YAML or JSON body without a valid API key, without reading it', async () => {
    resetPeakRss(pid);
    const before = peakRssBytes(pid);
    const answers = [];
    for (const [type, body] of [
      ['application/yaml', flatYaml(14 * MiB)],
      ['application/json', flatJson(14 * MiB)],
    ] as const) {
      for (const key of [undefined, 'wrong-key']) {
        const headers: Record<string, string> = { 'content-type': type, ...(key ? { authorization: `Bearer ${key}` } : {}) };
        for (const path of ['/v1/workflows', '/v1/runs']) {
          const response = await sendRaw(stack, 'POST', path, headers, body);
          answers.push({ type, key, path, status: response.status, connection: response.headers.connection, code: JSON.parse(response.text).error?.code });
        }
      }
    }
    expect(answers).toEqual(
      answers.map(({ type, key, path }) => ({ type, key, path, status: 401, connection: 'close', code: 'UNAUTHENTICATED' })),
    );
    // Parsing 14 MB of YAML took gigabytes (the coordinator was OOM-killed); not reading it costs nothing.
    expect(peakRssBytes(pid) - before).toBeLessThan(64 * MiB);
  });

  it('registers a YAML definition, and refuses one over MAX_YAML_BYTES with 413 and one of too many tokens with 400', async () => {
    const definition = 'id: from-yaml\nnodes:\n  - id: a\n    language: python\n    code: |\n      def main(args):\n          return {"ok": True}\n';
    const registered = await call(stack, 'POST', '/v1/workflows', { body: definition, headers: { 'content-type': 'application/yaml' } });
    expect({ status: registered.status, body: registered.json }).toEqual({ status: 201, body: { id: 'from-yaml', version: 1 } });
    const read = await call(stack, 'GET', '/v1/workflows/from-yaml');
    expect(read.json.definition).toEqual({ id: 'from-yaml', nodes: [{ id: 'a', language: 'python', code: 'def main(args):\n    return {"ok": True}\n' }] });
    const duplicate = await call(stack, 'POST', '/v1/workflows', { body: 'id: a\nid: b\n', headers: { 'content-type': 'application/yaml' } });
    expect({ status: duplicate.status, message: duplicate.json?.error?.message }).toEqual({ status: 400, message: expect.stringContaining('line 2, column 1: YAML syntax error: Map keys must be unique') });

    resetPeakRss(pid);
    const before = peakRssBytes(pid);
    const tooLarge = await sendRaw(stack, 'POST', '/v1/workflows', { 'content-type': 'application/yaml', authorization: 'Bearer test-key' }, flatYaml(MAX_YAML_BYTES + 2));
    expect({ status: tooLarge.status, body: JSON.parse(tooLarge.text).error }).toEqual({
      status: 413,
      body: expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE', message: expect.stringContaining(`the limit is ${MAX_YAML_BYTES} bytes (MAX_YAML_BYTES)`) }),
    });
    // Under the byte limit, a flat sequence of half a million numbers and a mapping of 80,000 keys:
    // refused by their token count before the YAML library builds anything (the mapping used to
    // block the event loop for more than a minute, the library comparing every key with every other).
    const keys = Buffer.from(Array.from({ length: 80_000 }, (_, i) => `k${i}: 1`).join('\n'));
    for (const body of [flatYaml(MAX_YAML_BYTES - 64), keys]) {
      const refused = await call(stack, 'POST', '/v1/workflows', { body, headers: { 'content-type': 'application/yaml' } });
      expect({ status: refused.status, message: refused.json?.error?.message }).toEqual({ status: 400, message: expect.stringContaining('more than 100000 YAML tokens') });
    }
    expect(peakRssBytes(pid) - before).toBeLessThan(64 * MiB);
    // YAML is read by the one route that takes it; elsewhere it is not a body at all.
    const run = await call(stack, 'POST', '/v1/runs', { body: 'workflowId: from-yaml\n', headers: { 'content-type': 'application/yaml' } });
    expect(run.status).toBe(400);
  });

  it('checks the nesting of a 14 MB flat JSON array without a frame per number', async () => {
    resetPeakRss(pid);
    const before = peakRssBytes(pid);
    const response = await sendRaw(stack, 'POST', '/v1/runs', { 'content-type': 'application/json', authorization: 'Bearer test-key' }, flatJson(14 * MiB));
    expect({ status: response.status, code: JSON.parse(response.text).error?.code }).toEqual({ status: 400, code: 'BAD_REQUEST' });
    // The parsed array itself is about 120 MB; the depth check used to add a frame per number (~500 MB more).
    expect(peakRssBytes(pid) - before).toBeLessThan(300 * MiB);
  });
});
