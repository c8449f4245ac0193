import { API_KEY, runToEnd, startStack, type Stack } from '../support/stack';

// Issue 15: resume a failed run. A new run with the same inputs keeps every succeeded node whose
// definition and upstream are unchanged (output and files as they were) and runs the rest.
describe('resuming a failed run (issue 15)', () => {
  let stack: Stack;
  beforeAll(async () => {
    // Outputs over 16 bytes are kept by reference (in the object store), as large ones are.
    stack = await startStack({ workers: 1, env: { OUTPUT_INLINE_MAX_BYTES: '16' } });
  });
  afterAll(() => stack?.stop());

  // a draws a random token (a second execution would draw another one), b writes a file from it,
  // c divides by inputs.divisor: broken until the definition is fixed.
  const workflow = (cCode: string) => ({
    id: 'resumable',
    nodes: [
      { id: 'a', language: 'python', code: 'import secrets\n\ndef main(args):\n    return {"token": secrets.token_hex(8)}\n' },
      { id: 'b', language: 'javascript', code: 'const fs = require("node:fs");\nfunction main(args) {\n  fs.writeFileSync("token.txt", args.nodes.a.output.token);\n  return { wrote: true };\n}\n' },
      { id: 'c', language: 'python', code: cCode },
    ],
    edges: [
      { from: 'a', to: 'b' },
      { from: 'b', to: 'c' },
    ],
  });
  const broken = workflow('def main(args):\n    return {"ratio": 1 / args["inputs"]["divisor"]}\n');
  const fixed = workflow('def main(args):\n    return {"token": args["nodes"]["a"]["output"]["token"], "divisor": args["inputs"]["divisor"]}\n');

  async function post(path: string, body: unknown, key = API_KEY): Promise<{ status: number; body: Record<string, unknown> & { error?: { code: string; message: string } } }> {
    const response = await fetch(`${stack.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as never };
  }

  it('keeps nodes 1-2 (not run again: same token, same file, one attempt each) and runs the fixed third node, which succeeds', async () => {
    const first = await runToEnd(stack, broken, { divisor: 0 });
    expect({ status: first.status, failed: first.error?.nodeId }).toEqual({ status: 'failed', failed: 'c' });
    const token = first.nodes.a!.output!.token;

    const resumed = await post(`/v1/runs/${first.id}/resume`, { workflow: fixed });
    expect(resumed).toMatchObject({ status: 202, body: { resumedFrom: first.id, kept: ['a', 'b'] } });
    const run = await stack.client.waitForRun(resumed.body.id as string, 100, 60_000);
    expect({ status: run.status, resumedFrom: run.resumedFrom, inputs: run.inputs }).toEqual({ status: 'succeeded', resumedFrom: first.id, inputs: { divisor: 0 } });
    for (const id of ['a', 'b']) expect(run.nodes[id]).toMatchObject({ status: 'succeeded', attempts: 1, keptFrom: first.id });
    expect(run.nodes.a!.output).toEqual({ token });
    // The kept output, stored apart by the first run, is referred to there: not stored again, not inline in the record.
    const stored = JSON.parse((await stack.redis.hget(stack.keys.nodes(run.id), 'a'))!) as { output?: unknown; outputRef?: { key: string } };
    expect({ inline: stored.output, ref: stored.outputRef?.key.includes(`/runs/${first.id}/`) }).toEqual({ inline: undefined, ref: true });
    expect(run.nodes.c).toMatchObject({ status: 'succeeded', attempts: 1, output: { token, divisor: 0 } });
    expect(run.nodes.c!.keptFrom).toBeUndefined();
    // b's file, kept: its URL downloads what the first run wrote.
    const [file] = run.nodes.b!.files!.elements;
    expect(file!.path).toBe('token.txt');
    expect(await (await fetch(file!.download_url)).text()).toBe(token);
  });

  it('runs a changed node again and everything after it; the same definition again keeps what succeeded', async () => {
    const first = await runToEnd(stack, broken, { divisor: 0 });
    const edited = structuredClone(fixed);
    edited.nodes[1] = { ...edited.nodes[1]!, code: edited.nodes[1]!.code.replace('wrote: true', 'wrote: "again"') };
    const resumed = await post(`/v1/runs/${first.id}/resume`, { workflow: edited });
    expect(resumed).toMatchObject({ status: 202, body: { kept: ['a'] } });
    const run = await stack.client.waitForRun(resumed.body.id as string, 100, 60_000);
    expect({ status: run.status, a: run.nodes.a?.keptFrom, b: run.nodes.b?.output }).toEqual({ status: 'succeeded', a: first.id, b: { wrote: 'again' } });
    // Resuming the failed run once more without a definition: its own, still broken; a and b are kept again.
    const again = await post(`/v1/runs/${first.id}/resume`, {});
    expect(again).toMatchObject({ status: 202, body: { kept: ['a', 'b'] } });
    const failedAgain = await stack.client.waitForRun(again.body.id as string, 100, 60_000);
    expect({ status: failedAgain.status, node: failedAgain.error?.nodeId }).toEqual({ status: 'failed', node: 'c' });
  });

  it('refuses what cannot be resumed: a succeeded run (409), another workflow (400), another tenant\'s run (404), an unknown field (400)', async () => {
    const done = await runToEnd(stack, fixed, { divisor: 2 });
    expect(done.status).toBe('succeeded');
    const succeeded = await post(`/v1/runs/${done.id}/resume`, {});
    expect(succeeded.status).toBe(409);
    expect(succeeded.body.error).toEqual({ code: 'CONFLICT', message: `run "${done.id}" is succeeded; only a failed or canceled run can be resumed (start a new run instead)` });

    const failed = await runToEnd(stack, broken, { divisor: 0 });
    const other = await post(`/v1/runs/${failed.id}/resume`, { workflow: { ...fixed, id: 'another' } });
    expect(other.status).toBe(400);
    expect(other.body.error?.message).toContain('but run');
    expect(other.body.error?.message).toContain('ran workflow "resumable"');
    expect((await post(`/v1/runs/${failed.id}/resume`, {}, 'other-key')).status).toBe(404);
    // A test run of one node is no run to resume.
    expect((await post('/v1/workflows', { ...broken, id: 'resumable-registered' })).status).toBe(201);
    const test = await post('/v1/workflows/resumable-registered/nodes/a/test', {});
    const tested = await stack.client.waitForRun(test.body.id as string, 100, 60_000);
    const resumeTest = await post(`/v1/runs/${tested.id}/resume`, {});
    expect({ status: resumeTest.status, code: resumeTest.body.error?.code }).toEqual({ status: 409, code: 'CONFLICT' });
    expect(resumeTest.body.error?.message).toContain('is a test run of node "a"');
    const unknown = await post(`/v1/runs/${failed.id}/resume`, { inputs: { divisor: 1 } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error?.message).toMatch(/inputs/);
  });
});
