import { executionIdOf, type ExecResult, type JsonObject, type NodeError } from '@podflow/protocol';
import { createRunState, transition } from './engine';
import { MAX_RETRY_DELAY_MS, retriesAllowed, retryDelayMs } from './engine-results';
import type { EngineCommand, RunState } from './types';
import { parseWorkflow } from './validate';

const code = 'def main(args): return {}';

function runOf(definition: object, inputs: JsonObject = {}): RunState {
  return createRunState({ id: 'r1', tenantId: 't1', workflow: parseWorkflow(definition), inputs, now: 5 });
}

function result(state: RunState, nodeId: string, outcome: { output?: unknown; error?: NodeError } = {}): ExecResult {
  const attempt = state.nodes[nodeId].attempts;
  return {
    executionId: executionIdOf(state.id, nodeId, attempt),
    tenantId: state.tenantId,
    runId: state.id,
    nodeId,
    attempt,
    status: outcome.error ? 'failed' : 'succeeded',
    ...(outcome.error ? { error: outcome.error } : { output: (outcome.output ?? {}) as JsonObject }),
    logs: { stdout: '', stderr: '', truncated: false },
    warnings: [],
    timings: { enqueuedAt: 0, startedAt: 0, finishedAt: 0, queueWaitMs: 0, executionMs: 0 },
    workerId: 'w1',
  };
}

function kinds(commands: EngineCommand[]): string[] {
  return commands.map((command) => {
    if (command.type === 'emit') return command.event.type === 'run' ? `run:${command.event.status}` : `${command.event.nodeId}:${command.event.status}`;
    if (command.type === 'enqueue') return `enqueue:${command.job.nodeId}`;
    if (command.type === 'cancel_execution') return `cancel:${command.nodeId}`;
    return command.type;
  });
}

async function started(definition: object, inputs: JsonObject = {}): Promise<RunState> {
  return (await transition(runOf(definition, inputs), { type: 'start', at: 10 })).state;
}

const chain = { id: 'wf', timeout: '1m', nodes: [{ id: 'a', language: 'python', code }, { id: 'b', language: 'python', code }], edges: [{ from: 'a', to: 'b' }] };

describe('createRunState', () => {
  it('starts queued with every node pending and every edge unresolved', () => {
    const state = runOf(chain, { q: 1 });
    expect(state).toMatchObject({ id: 'r1', tenantId: 't1', status: 'queued', inputs: { q: 1 }, createdAt: 5, edges: ['pending'] });
    expect(state.nodes).toEqual({ a: { status: 'pending', attempts: 0, timings: {} }, b: { status: 'pending', attempts: 0, timings: {} } });
    expect(state).not.toHaveProperty('workflowVersion');
  });
});

describe('start', () => {
  it('schedules the timeout, announces the run and enqueues the roots, in that order', async () => {
    const { state, commands } = await transition(runOf(chain, { q: 1 }), { type: 'start', at: 10 });
    expect(kinds(commands)).toEqual(['schedule_run_timeout', 'run:running', 'enqueue:a', 'a:queued']);
    expect(commands[0]).toEqual({ type: 'schedule_run_timeout', at: 60_010 });
    expect(commands[2]).toEqual({
      type: 'enqueue',
      delayMs: 0,
      job: {
        executionId: 'r1.a.1',
        tenantId: 't1',
        runId: 'r1',
        nodeId: 'a',
        attempt: 1,
        language: 'python',
        code,
        args: { inputs: { q: 1 }, nodes: {} },
        timeoutMs: 60_000,
        dependencies: [],
        network: false,
        enqueuedAt: 10,
      },
    });
    expect(state).toMatchObject({ status: 'running', startedAt: 10, deadlineAt: 60_010 });
    expect(state.nodes.a).toEqual({ status: 'queued', attempts: 1, executionId: 'r1.a.1', timings: { queuedAt: 10 } });
  });

  it('is a no-op on a run that already started', async () => {
    const state = await started(chain);
    const again = await transition(state, { type: 'start', at: 20 });
    expect(again.commands).toEqual([]);
    expect(again.state).toEqual(state);
  });
});

describe('node_started', () => {
  it('ignores unknown nodes, other executions and nodes that are not queued', async () => {
    const state = await started(chain);
    for (const event of [
      { type: 'node_started' as const, nodeId: 'zz', executionId: 'r1.zz.1', at: 11 },
      { type: 'node_started' as const, nodeId: 'a', executionId: 'r1.a.2', at: 11 },
      { type: 'node_started' as const, nodeId: 'b', executionId: 'r1.b.0', at: 11 },
    ]) {
      expect((await transition(state, event)).commands).toEqual([]);
    }
  });
});

describe('node_finished', () => {
  it('ignores results of another run', async () => {
    const state = await started(chain);
    const foreign = { ...result(state, 'a'), runId: 'r2' };
    expect((await transition(state, { type: 'node_finished', result: foreign, at: 11 })).commands).toEqual([]);
  });

  it('fails a node whose success carries no JSON object', async () => {
    const state = await started(chain);
    const bad = result(state, 'a', { output: [1, 2] });
    const next = await transition(state, { type: 'node_finished', result: bad, at: 11 });
    expect(next.state.nodes.a.error).toMatchObject({ code: 'OUTPUT_INVALID', message: 'node "a" returned a value of type array; main must return a JSON object' });
    expect(next.state.status).toBe('failed');
  });

  it('emits the node failure, then the cancellations, then the run failure', async () => {
    const definition = {
      id: 'wf',
      nodes: [{ id: 'a', language: 'python', code }, { id: 'b', language: 'python', code }, { id: 'c', language: 'python', code }],
      edges: [{ from: 'a', to: 'c' }],
    };
    const state = await started(definition);
    const boom = { code: 'CODE_EXECUTION_FAILED' as const, message: 'boom' };
    const next = await transition(state, { type: 'node_finished', result: result(state, 'a', { error: boom }), at: 11 });
    expect(kinds(next.commands)).toEqual(['a:failed', 'cancel:b', 'b:canceled', 'c:canceled', 'run:failed']);
    expect(next.state.error).toEqual({ code: 'CODE_EXECUTION_FAILED', message: 'boom', nodeId: 'a' });
    expect(next.state.nodes.b.error).toEqual({ code: 'CANCELED', message: 'canceled because node "a" failed with CODE_EXECUTION_FAILED', nodeId: 'b' });
  });

  it('treats an unknown error code as a code failure and keeps the reported one', async () => {
    const state = await started(chain);
    const odd = result(state, 'a', { error: { code: 'WEIRD' as NodeError['code'], message: 'odd' } });
    const next = await transition(state, { type: 'node_finished', result: odd, at: 11 });
    expect(next.state.error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', message: 'odd', nodeId: 'a' });
    expect(next.state.nodes.a.error?.details).toEqual({ reportedCode: 'WEIRD' });
  });

  it('fails the run when the only failure edge has a false condition', async () => {
    const definition = { ...chain, edges: [{ from: 'a', to: 'b', on: 'failure', when: "nodes.a.error.code = 'SANDBOX_LOST'" }] };
    const state = await started(definition);
    const next = await transition(state, { type: 'node_finished', result: result(state, 'a', { error: { code: 'OUTPUT_TOO_LARGE', message: 'big' } }), at: 11 });
    expect(next.state.status).toBe('failed');
    expect(next.state.nodes.b.status).toBe('canceled');
  });

  it('gives an error branch reached from several failures the first failure by edge order', async () => {
    const definition = {
      id: 'wf',
      nodes: ['a', 'b', 'handler'].map((id) => ({ id, language: 'python', code })),
      edges: [{ from: 'b', to: 'handler', on: 'failure' }, { from: 'a', to: 'handler', on: 'failure' }],
    };
    let { state } = await transition(runOf(definition), { type: 'start', at: 10 });
    ({ state } = await transition(state, { type: 'node_finished', result: result(state, 'a', { error: { code: 'CODE_EXECUTION_FAILED', message: 'a broke' } }), at: 11 }));
    const last = await transition(state, { type: 'node_finished', result: result(state, 'b', { error: { code: 'EXECUTION_TIMEOUT', message: 'b slow' } }), at: 12 });
    const enqueue = last.commands.find((command) => command.type === 'enqueue');
    expect(enqueue?.type === 'enqueue' && enqueue.job.args?.error).toEqual({ nodeId: 'b', code: 'EXECUTION_TIMEOUT', message: 'b slow' });
  });

  it('gives a node with bindings exactly the bound object, even on an error branch', async () => {
    const definition = {
      id: 'wf',
      nodes: [{ id: 'a', language: 'python', code }, { id: 'b', language: 'python', code, inputs: { why: 'nodes.a.error.message' } }],
      edges: [{ from: 'a', to: 'b', on: 'failure' }],
    };
    const state = await started(definition);
    const next = await transition(state, { type: 'node_finished', result: result(state, 'a', { error: { code: 'CODE_EXECUTION_FAILED', message: 'boom' } }), at: 11 });
    const enqueue = next.commands.find((command) => command.type === 'enqueue');
    expect(enqueue?.type === 'enqueue' && enqueue.job.args).toEqual({ why: 'boom' });
  });
});

describe('output references', () => {
  const ref = { key: 'tenants/t1/runs/r1/nodes/a/1.output.x.json', size: 300_000, sha256: 'ab'.repeat(32) };

  it('keeps the reference beside the output, through later transitions, and never reads it', async () => {
    const state = await started(chain);
    const next = await transition(state, { type: 'node_finished', result: { ...result(state, 'a', { output: { big: 'x' } }), outputRef: ref }, at: 11 });
    expect(next.state.nodes.a).toMatchObject({ status: 'succeeded', output: { big: 'x' }, outputRef: ref });
    const enqueue = next.commands.find((command) => command.type === 'enqueue');
    expect(enqueue?.type === 'enqueue' && enqueue.job.args).toEqual({ inputs: {}, nodes: { a: { output: { big: 'x' } } } });
    const last = await transition(next.state, { type: 'node_finished', result: result(next.state, 'b', { output: { n: 1 } }), at: 12 });
    expect(last.state.nodes.a.outputRef).toEqual(ref);
    expect(last.state.nodes.b).not.toHaveProperty('outputRef');
    expect(last.state).not.toHaveProperty('outputsRef');
  });

  it('drops the reference with the output when the node fails', async () => {
    const definition = { ...chain, nodes: [{ id: 'a', language: 'python', code, outputs: { n: 'integer' } }, chain.nodes[1]] };
    const state = await started(definition);
    const next = await transition(state, { type: 'node_finished', result: { ...result(state, 'a', { output: { n: 'no' } }), outputRef: ref }, at: 11 });
    expect(next.state.nodes.a.status).toBe('failed');
    expect(next.state.nodes.a).not.toHaveProperty('output');
    expect(next.state.nodes.a).not.toHaveProperty('outputRef');
  });
});

describe('run completion', () => {
  it('fails the run when the workflow output expression fails', async () => {
    const state = await started({ ...chain, edges: [], output: '{ "n": $number(nodes.a.output.word) }' });
    let next = await transition(state, { type: 'node_finished', result: result(state, 'a', { output: { word: 'x' } }), at: 11 });
    next = await transition(next.state, { type: 'node_finished', result: result(next.state, 'b'), at: 12 });
    expect(next.state.status).toBe('failed');
    expect(next.state.error).toMatchObject({ code: 'INPUT_BINDING_FAILED', message: expect.stringMatching(/^workflow output: expression/) });
  });

  it('fails the run when the workflow output is not an object', async () => {
    const state = await started({ id: 'wf', output: 'nodes.a.output.n', nodes: [{ id: 'a', language: 'python', code }] });
    const next = await transition(state, { type: 'node_finished', result: result(state, 'a', { output: { n: 3 } }), at: 11 });
    expect(next.state.error).toMatchObject({ code: 'INPUT_BINDING_FAILED', message: expect.stringContaining('must evaluate to an object, got a number') });
  });
});

describe('cancel and run_timeout', () => {
  it('cancels a run that never started, without cancel_execution commands', async () => {
    const { state, commands } = await transition(runOf(chain), { type: 'cancel', at: 7 });
    expect(kinds(commands)).toEqual(['a:canceled', 'b:canceled', 'run:canceled']);
    expect(state).toMatchObject({ status: 'canceled', finishedAt: 7, error: { code: 'CANCELED', message: 'run canceled' } });
  });

  it('ignores a timeout on a run that is not running', async () => {
    expect((await transition(runOf(chain), { type: 'run_timeout', at: 7 })).commands).toEqual([]);
  });
});

describe('retry policy', () => {
  const node = parseWorkflow({ id: 'wf', nodes: [{ id: 'a', language: 'python', code, retries: { max: 1 } }] }).nodes[0];

  it('retries platform failures at least twice, code failures only as asked, contract failures never', () => {
    expect(retriesAllowed(node, 'SANDBOX_LOST')).toBe(2);
    expect(retriesAllowed({ ...node, retries: { ...node.retries, max: 5 } }, 'SANDBOX_START_TIMEOUT')).toBe(5);
    expect(retriesAllowed(node, 'CODE_EXECUTION_FAILED')).toBe(1);
    expect(retriesAllowed(node, 'MEMORY_LIMIT_EXCEEDED')).toBe(1);
    expect(retriesAllowed(node, 'OUTPUT_INVALID')).toBe(0);
    expect(retriesAllowed(node, 'INPUT_BINDING_FAILED')).toBe(0);
  });

  it('backs off exponentially up to five minutes, or by a fixed delay', () => {
    const exponential = { max: 10, backoff: 'exponential' as const, delayMs: 1_000 };
    expect([1, 2, 3, 4].map((index) => retryDelayMs(exponential, index))).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(retryDelayMs(exponential, 12)).toBe(MAX_RETRY_DELAY_MS);
    expect(retryDelayMs({ ...exponential, backoff: 'fixed' }, 7)).toBe(1_000);
  });
});

describe('errors are bounded (issue 10 review, finding 6)', () => {
  it('keeps a 3 MB exception message out of the run state, its events and a failure branch\'s args', async () => {
    const huge = `boom ${'x'.repeat(3 * 1024 * 1024)}`;
    const error: NodeError = { code: 'CODE_EXECUTION_FAILED', message: huge, type: 'ValueError', stack: huge };
    const alone = await started({ id: 'wf', nodes: [{ id: 'a', language: 'python', code }] });
    const failed = await transition(alone, { type: 'node_finished', result: result(alone, 'a', { error }), at: 20 });
    expect(failed.state.status).toBe('failed');
    const bytes = JSON.stringify(failed.state).length + JSON.stringify(failed.commands).length;
    expect(bytes).toBeLessThan(300 * 1024);
    expect({ length: failed.state.error!.message.length, end: failed.state.error!.message.slice(-50) }).toEqual({ length: 16384 + 40, end: expect.stringMatching(/x… \[truncated: 3145733 characters in all\]$/) });
    const branch = await started({ id: 'wf', nodes: [{ id: 'a', language: 'python', code }, { id: 'b', language: 'python', code }], edges: [{ from: 'a', to: 'b', on: 'failure' }] });
    const routed = await transition(branch, { type: 'node_finished', result: result(branch, 'a', { error }), at: 20 });
    const enqueued = routed.commands.find((command) => command.type === 'enqueue');
    expect(JSON.stringify(enqueued).length).toBeLessThan(100 * 1024);
  });
});

describe('fail', () => {
  it('fails a live run with the given error and cancels its active nodes; a finished run stays as it is', async () => {
    const state = await started(chain);
    const error: NodeError = { code: 'INTERNAL', message: 'the result of execution x could not be applied' };
    const { state: failed, commands } = await transition(state, { type: 'fail', at: 30, error });
    expect({ status: failed.status, error: failed.error, a: failed.nodes.a.status, b: failed.nodes.b.status }).toEqual({ status: 'failed', error, a: 'canceled', b: 'canceled' });
    expect(kinds(commands)).toEqual(['cancel:a', 'a:canceled', 'b:canceled', 'run:failed']);
    expect((await transition(failed, { type: 'fail', at: 40, error })).commands).toEqual([]);
  });
});
