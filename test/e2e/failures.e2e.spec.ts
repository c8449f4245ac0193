import { readdirSync, readFileSync } from 'node:fs';
import { execute, runToEnd, startStack, type Stack } from '../support/stack';

/** Processes whose command line contains `marker`, read from /proc. */
function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

describe('failures', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 1, workerEnv: { WORKER_CONCURRENCY: '4' } });
  });
  afterAll(() => stack?.stop());

  it('hands the failure to the error branch as args.error, and the run succeeds', async () => {
    const run = await runToEnd(stack, {
      id: 'branch',
      nodes: [
        { id: 'boom', language: 'python', code: 'def main(args):\n    raise ValueError("bad row 7")\n' },
        { id: 'handler', language: 'typescript', code: 'export function main(args: { error: { nodeId: string; code: string; message: string } }) { return { seen: args.error }; }' },
      ],
      edges: [{ from: 'boom', to: 'handler', on: 'failure' }],
    });
    expect(run.status).toBe('succeeded');
    expect(run.nodes.boom).toMatchObject({ status: 'failed', error: { code: 'CODE_EXECUTION_FAILED', type: 'ValueError' } });
    expect(run.outputs).toEqual({ handler: { seen: expect.objectContaining({ nodeId: 'boom', code: 'CODE_EXECUTION_FAILED', message: 'bad row 7' }) } });
  });

  it('fails the run, naming the node, the code and the user stack, when no error branch is connected', async () => {
    const run = await runToEnd(stack, {
      id: 'no-branch',
      nodes: [
        { id: 'first', language: 'python', code: 'def main(args):\n    return {"n": 1}\n' },
        { id: 'divide', language: 'python', code: 'def helper(n):\n    return n / 0\n\ndef main(args):\n    return {"x": helper(args["nodes"]["first"]["output"]["n"])}\n' },
        { id: 'after', language: 'python', code: 'def main(args):\n    return {}\n' },
      ],
      edges: [
        { from: 'first', to: 'divide' },
        { from: 'divide', to: 'after' },
      ],
    });
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ nodeId: 'divide', code: 'CODE_EXECUTION_FAILED', type: 'ZeroDivisionError' });
    expect(run.error!.stack).toMatch(/main\.py", line 2, in helper/);
    expect(run.error!.stack).not.toMatch(/podflow_runner/);
    expect(run.nodes.after!.status).toBe('canceled');
  });

  it('ends an infinite loop with timeout 2s as EXECUTION_TIMEOUT and leaves no process behind', async () => {
    const marker = `98${Math.floor(Math.random() * 1e6)}`;
    const run = await runToEnd(stack, {
      id: 'spin',
      nodes: [{ id: 'spin', language: 'python', timeout: '2s', code: `import subprocess\n\ndef main(args):\n    subprocess.Popen(["sleep", "${marker}"])\n    while True:\n        pass\n` }],
    });
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ nodeId: 'spin', code: 'EXECUTION_TIMEOUT' });
    expect(processesWith(marker)).toEqual([]);
  });

  it.each([
    ['python', 'def main(args):\n    return {"tags": {1, 2}}\n', /output\.tags/],
    ['python', 'def main(args):\n    return {"ratio": float("nan")}\n', /output\.ratio/],
    ['python', 'def main(args):\n    return [1, 2, 3]\n', /list/],
    ['javascript', 'function main() { return { cb: () => 1 }; }', /output\.cb/],
    ['typescript', 'export function main() { return { when: { at: new Date(0) } }; }', /output\.when\.at/],
    ['javascript', 'function main() { return [1, 2]; }', /array|list/i],
  ])('rejects invalid %s output as OUTPUT_INVALID naming the path', async (language, code, path) => {
    const result = await execute(stack, language, code);
    expect(result.status).toBe('failed');
    expect(result.error!.code).toBe('OUTPUT_INVALID');
    expect(result.error!.message).toMatch(path);
  });

  const node = (extra: Record<string, unknown> = {}) => ({ id: 'a', language: 'python', code: 'def main(args):\n    return {}\n', ...extra });
  it.each([
    ['a cycle', { id: 'w', nodes: [node(), node({ id: 'b' })], edges: [{ from: 'a', to: 'b' }, { from: 'b', to: 'a' }] }, /cycle/i],
    ['an unknown edge target', { id: 'w', nodes: [node(), node({ id: 'b' })], edges: [{ from: 'a', to: 'bb' }] }, /"bb"/],
    ['a duplicate node id', { id: 'w', nodes: [node(), node()] }, /duplicate/i],
    ['bad JSONata in an input binding', { id: 'w', nodes: [node({ inputs: { x: 'inputs.(' } })] }, /inputs\.x/],
    ['bad JSONata in an edge condition', { id: 'w', nodes: [node(), node({ id: 'b' })], edges: [{ from: 'a', to: 'b', when: '$count(' }] }, /when/],
    ['bad JSONata in the workflow output', { id: 'w', output: '{ "a": }', nodes: [node()] }, /output/],
    ['an unknown language', { id: 'w', nodes: [node({ language: 'ruby' })] }, /language/],
    ['empty code', { id: 'w', nodes: [node({ code: '   ' })] }, /code/],
    ['oversized code', { id: 'w', nodes: [node({ code: `def main(args):\n    return {}\n#${'x'.repeat(300 * 1024)}` })] }, /code/],
    ['an unparseable timeout', { id: 'w', nodes: [node({ timeout: 'soon' })] }, /timeout/],
    ['no nodes', { id: 'w', nodes: [] }, /nodes/],
  ])('rejects a definition with %s with 400 and a message naming it', async (_name, workflow, message) => {
    const response = await fetch(`${stack.url}/v1/runs`, {
      method: 'POST',
      headers: { authorization: 'Bearer test-key', 'content-type': 'application/json' },
      body: JSON.stringify({ workflow }),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('INVALID_WORKFLOW');
    expect(body.error.message).toMatch(message);
  });

  it('returns one run for the same idempotencyKey', async () => {
    const workflow = { id: 'idem', nodes: [node()] };
    const first = await stack.client.submitRun({ workflow, idempotencyKey: 'order-42' });
    const second = await stack.client.submitRun({ workflow, idempotencyKey: 'order-42' });
    expect(second.id).toBe(first.id);
    const other = await stack.client.submitRun({ workflow, idempotencyKey: 'order-43' });
    expect(other.id).not.toBe(first.id);
    const { runs } = await stack.client.request<{ runs: Array<{ id: string }> }>('GET', '/v1/runs?workflowId=idem');
    expect(runs.map((r) => r.id).sort()).toEqual([first.id, other.id].sort());
  });

  it('cancels a running run and kills its sandbox', async () => {
    const marker = `97${Math.floor(Math.random() * 1e6)}`;
    const { id } = await stack.client.submitRun({
      workflow: { id: 'long', nodes: [{ id: 'wait', language: 'python', timeout: '60s', code: `import subprocess\n\ndef main(args):\n    subprocess.run(["sleep", "${marker}"])\n    return {}\n` }] },
    });
    // Wait for the process itself. A warm sandbox can run the code before the node's `started`
    // report lands (the worker sends it after STARTED_REPORT_DELAY_MS), so wait for that too.
    for (let i = 0; i < 200 && processesWith(marker).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    let status = (await stack.client.getRun(id)).nodes.wait!.status;
    for (let i = 0; i < 100 && status === 'queued'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      status = (await stack.client.getRun(id)).nodes.wait!.status;
    }
    expect(status).toBe('running');
    expect(processesWith(marker).length).toBeGreaterThan(0);
    await stack.client.cancelRun(id);
    const run = await stack.client.waitForRun(id);
    expect(run.status).toBe('canceled');
    expect(run.nodes.wait!.status).toBe('canceled');
    for (let i = 0; i < 50 && processesWith(marker).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(processesWith(marker)).toEqual([]);
  });

  it('keeps tenants apart and demands an API key', async () => {
    const { id } = await stack.client.submitRun({ workflow: { id: 'mine', nodes: [node()] } });
    const asOther = await fetch(`${stack.url}/v1/runs/${id}`, { headers: { authorization: 'Bearer other-key' } });
    expect(asOther.status).toBe(404);
    const anonymous = await fetch(`${stack.url}/v1/runs/${id}`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
  });
});
