import { QUEUE_NAMES, executionIdOf, type ExecResult, type ResultMessage } from '@podflow/protocol';
import { Queue } from 'bullmq';
import { TENANT, startStack, type Stack } from '../support/stack';
import { call, eventually, expectHealthy } from './support/api';

// Issue 10 review, findings 5 and 6: what a node reports is bounded before it reaches run state and
// events, and a result the coordinator cannot apply fails its run at once instead of being retried
// until RUN_TIMEOUT. Forged results stand for a runner that user code has taken over.

const sleeper = 'import time\n\ndef main(args):\n    time.sleep(60)\n    return {}\n';

async function runningRun(stack: Stack): Promise<string> {
  const submitted = await call(stack, 'POST', '/v1/runs', { body: { workflow: { id: 'victim', nodes: [{ id: 'a', language: 'python', code: sleeper }] } } });
  const id = submitted.json.id as string;
  await eventually(async () => (await call(stack, 'GET', `/v1/runs/${id}`)).json.nodes.a.status === 'running', 'the node to run');
  return id;
}

function forgedResult(runId: string, extra: Partial<ExecResult> & Record<string, unknown>): ResultMessage {
  return {
    kind: 'finished',
    result: {
      executionId: executionIdOf(runId, 'a', 1),
      tenantId: TENANT,
      runId,
      nodeId: 'a',
      attempt: 1,
      status: 'succeeded',
      output: {},
      logs: { stdout: '', stderr: '', truncated: false },
      warnings: [],
      timings: { enqueuedAt: 0, startedAt: 0, finishedAt: Date.now(), queueWaitMs: 0, executionMs: 0 },
      workerId: 'forged',
      ...extra,
    } as ExecResult,
  };
}

async function failedRun(stack: Stack, id: string) {
  return eventually(async () => {
    const run = await call(stack, 'GET', `/v1/runs/${id}`);
    return run.json.status === 'failed' ? run.json : undefined;
  }, `run ${id} to fail`, 60_000);
}

describe('results (issue 10 review, findings 5 and 6)', () => {
  let stack: Stack;
  let results: Queue<ResultMessage>;
  beforeAll(async () => {
    stack = await startStack();
    results = new Queue<ResultMessage>(QUEUE_NAMES.results, { connection: stack.redis, prefix: stack.bullPrefix(QUEUE_NAMES.results) });
  });
  afterAll(async () => {
    await results?.close();
    await stack?.stop();
  });
  afterEach(() => expectHealthy(stack));

  it('keeps a 3 MB exception message out of the run, its events and its event stream', async () => {
    const code = 'def main(args):\n    raise ValueError("boom " + "x" * 3_000_000)\n';
    const submitted = await call(stack, 'POST', '/v1/runs', { body: { workflow: { id: 'loud', nodes: [{ id: 'a', language: 'python', code }] } } });
    const run = await failedRun(stack, submitted.json.id as string);
    expect(run.error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', message: expect.stringMatching(/^ValueError: boom x+… \[truncated: \d+ characters in all\]$|boom x+… \[truncated: \d+ characters in all\]$/) });
    expect(run.error.message.length).toBeLessThan(17 * 1024);
    // 12.5 MB went into this run's event stream; now every entry is small.
    const entries = await stack.redis.xrange(stack.keys.events(run.id), '-', '+');
    const bytes = entries.reduce((sum, [, fields]) => sum + fields.join('').length, 0);
    expect(bytes).toBeLessThan(128 * 1024);
    const stream = await fetch(`${stack.url}/v1/runs/${run.id}/events`, { headers: { authorization: 'Bearer test-key' } });
    expect((await stream.text()).length).toBeLessThan(128 * 1024);
  });

  it('fails a node whose forged output nests 1,000 levels deep with OUTPUT_INVALID (runners allow 512)', async () => {
    const id = await runningRun(stack);
    let deep: Record<string, unknown> = {};
    // Deeper still (tens of thousands) overflowed the coordinator's copies on every delivery; 5,000 are more than the test's JSON.stringify can send.
    for (let i = 0; i < 1_000; i++) deep = { d: deep };
    const message = forgedResult(id, { output: deep as ExecResult['output'] });
    await results.add('finished', message, { jobId: `forged-deep-${id}`, attempts: 10, backoff: { type: 'exponential', delay: 200 } });
    const run = await failedRun(stack, id);
    expect(run.nodes.a.error).toMatchObject({ code: 'OUTPUT_INVALID', message: expect.stringContaining('nests deeper than 512 levels') });
  });

  it('fails the run of a result it cannot apply at once with INTERNAL, instead of leaving it to RUN_TIMEOUT', async () => {
    const id = await runningRun(stack);
    // `warnings` that is not a list: applying it throws a TypeError, the same on every delivery.
    await results.add('finished', forgedResult(id, { warnings: 5 as unknown as string[] }), { jobId: `forged-bad-${id}`, attempts: 10, backoff: { type: 'exponential', delay: 60_000 } });
    const run = await failedRun(stack, id);
    expect(run.error).toMatchObject({ code: 'INTERNAL', message: expect.stringContaining(`could not apply the result of execution ${executionIdOf(id, 'a', 1)}`) });
    expect(run.nodes.a.status).toBe('canceled');
  });
});
