import { runToEnd, startStack, stopProcess, type Stack } from '../support/stack';

describe('worker and coordinator failures', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 1 });
  });
  afterAll(() => stack?.stop());

  it('re-delivers the job of a worker killed with -9 mid-node, and the run still finishes', async () => {
    const { id } = await stack.client.submitRun({
      workflow: {
        id: 'crash',
        nodes: [
          { id: 'slow', language: 'python', code: 'import time\n\ndef main(args):\n    time.sleep(3)\n    return {"done": True}\n' },
          { id: 'next', language: 'javascript', code: 'function main(args) { return { after: args.nodes.slow.output.done }; }' },
        ],
        edges: [{ from: 'slow', to: 'next' }],
      },
    });
    for (let i = 0; i < 300 && (await stack.client.getRun(id)).nodes.slow!.status !== 'running'; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await stack.client.getRun(id)).nodes.slow!.status).toBe('running');
    await stopProcess(stack.workers[0]!, 'SIGKILL');
    await stack.startWorker();
    const run = await stack.client.waitForRun(id, 200, 90_000);
    expect(run.status).toBe('succeeded');
    expect(run.outputs).toEqual({ next: { after: true } });
  });

  it('never double-enqueues with two coordinators and duplicate results', async () => {
    await stack.startCoordinator(); // a second coordinator consuming the same results queue
    const nodes = Array.from({ length: 12 }, (_, i) => ({ id: `n${i}`, language: 'python', code: `def main(args):\n    return {"i": ${i}}\n` }));
    const run = await runToEnd(stack, { id: 'fan', nodes: [{ id: 'root', language: 'python', code: 'def main(args):\n    return {}\n' }, ...nodes], edges: nodes.map((n) => ({ from: 'root', to: n.id })) });
    expect(run.status).toBe('succeeded');
    expect(Object.values(run.nodes).map((n) => n.attempts)).toEqual(Array(13).fill(1));

    // Deliver every finished result of that run a second time, under new job ids.
    const { Queue } = await import('bullmq');
    const results = new Queue('results', { connection: stack.redis, prefix: stack.bullPrefix('results') });
    const exec = new Queue('exec', { connection: stack.redis, prefix: stack.bullPrefix('exec') });
    const before = (await exec.getJobs(['completed', 'waiting', 'active', 'delayed'])).filter((j) => j.data.runId === run.id).length;
    expect(before).toBe(13);
    const state = await stack.client.getRun(run.id);
    for (const [nodeId, node] of Object.entries(state.nodes)) {
      const executionId = `${run.id}.${nodeId}.1`;
      await results.add('finished', { kind: 'finished', result: { executionId, runId: run.id, nodeId, attempt: 1, tenantId: 'acme', status: 'succeeded', output: { replayed: true }, logs: { stdout: '', stderr: '', truncated: false }, warnings: [], timings: { enqueuedAt: 0, startedAt: 0, finishedAt: Date.now(), queueWaitMs: 0, executionMs: 0 }, workerId: 'replay' } } as never, { jobId: `replay.${executionId}` });
      expect(node.status).toBe('succeeded');
    }
    for (let i = 0; i < 100 && (await results.getJobCounts('waiting', 'active')).waiting + (await results.getJobCounts('active')).active > 0; i++) await new Promise((r) => setTimeout(r, 100));
    const after = await stack.client.getRun(run.id);
    expect(after.outputs).toEqual(run.outputs);
    expect((await exec.getJobs(['completed', 'waiting', 'active', 'delayed'])).filter((j) => j.data.runId === run.id).length).toBe(13);
    await results.close();
    await exec.close();
  });
});
