import { executionIdOf, type ExecResult, type JsonObject } from '@podflow/protocol';
import { createRunState, transition } from './engine';
import { checkOutput } from './outputs';
import { enqueuesOf } from './testing/fixture-runner';
import type { EngineCommand, RunState } from './types';
import { parseWorkflow } from './validate';

const code = 'def main(args): return {}';

/**
 * Node ids, binding names and output keys that are Object.prototype members. Built with JSON.parse:
 * an object literal `{ __proto__: ... }` would set a prototype instead of a key.
 */
const definition: unknown = JSON.parse(`{
  "id": "reserved",
  "nodes": [
    { "id": "__proto__", "language": "python", "code": ${JSON.stringify(code)} },
    { "id": "constructor", "language": "python", "code": ${JSON.stringify(code)},
      "inputs": { "__proto__": "nodes.__proto__.output", "toString": "nodes.__proto__.output.k" },
      "outputs": { "__proto__": "object", "valueOf": "integer" } },
    { "id": "toString", "language": "python", "code": ${JSON.stringify(code)} }
  ],
  "edges": [ { "from": "__proto__", "to": "constructor" }, { "from": "constructor", "to": "toString" } ]
}`);

function finished(state: RunState, nodeId: string, output: JsonObject): ExecResult {
  const attempt = state.nodes[nodeId]!.attempts;
  return {
    executionId: executionIdOf(state.id, nodeId, attempt),
    tenantId: state.tenantId,
    runId: state.id,
    nodeId,
    attempt,
    status: 'succeeded',
    output,
    logs: { stdout: '', stderr: '', truncated: false },
    workerId: 'test-worker',
    warnings: [],
    timings: { enqueuedAt: 0, startedAt: 1, finishedAt: 2, queueWaitMs: 1, executionMs: 1 },
  };
}

/** What Redis and the queues see: the state and commands as JSON. */
const json = (value: unknown) => JSON.parse(JSON.stringify(value)) as Record<string, unknown>;

describe('node ids and keys named like Object.prototype members', () => {
  it('runs __proto__ → constructor → toString end to end, keeping __proto__ keys in args and outputs', async () => {
    const workflow = parseWorkflow(definition as object);
    expect(Object.keys(workflow.nodes[1]!.inputs!)).toEqual(['__proto__', 'toString']);
    expect(Object.keys(workflow.nodes[1]!.outputs!)).toEqual(['__proto__', 'valueOf']);

    let state = createRunState({ id: 'r1', tenantId: 't1', workflow, inputs: JSON.parse('{"__proto__": {"in": true}}'), now: 0 });
    expect(Object.keys(state.nodes)).toEqual(['__proto__', 'constructor', 'toString']);
    let step = await transition(state, { type: 'start', at: 1 });
    expect(enqueuesOf(step.commands).map((c) => c.job.nodeId)).toEqual(['__proto__']);

    const enqueued: EngineCommand[] = [];
    const outputs = new Map<string, JsonObject>([
      ['__proto__', JSON.parse('{"__proto__": {"x": 1}, "k": 2}')],
      ['constructor', JSON.parse('{"__proto__": {"y": 3}, "valueOf": 4}')],
      ['toString', JSON.parse('{"__proto__": "leaf"}')],
    ]);
    for (const [nodeId, output] of outputs) {
      // Every transition starts from the stored JSON, as the coordinator does.
      state = json(step.state) as unknown as RunState;
      step = await transition(state, { type: 'node_finished', result: finished(state, nodeId, output), at: 3 });
      enqueued.push(...step.commands);
    }

    const final = json(step.state) as unknown as RunState;
    expect({ status: final.status, error: final.error }).toEqual({ status: 'succeeded', error: undefined });
    expect(Object.keys(final.nodes)).toEqual(['__proto__', 'constructor', 'toString']);
    expect(Object.values(final.nodes).map((node) => node.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    // Through a Map: `nodes.constructor` is typed as Object's own member.
    expect(new Map(Object.entries(final.nodes)).get('constructor')!.warnings).toBeUndefined();
    expect(JSON.stringify(final.outputs)).toBe('{"toString":{"__proto__":"leaf"}}');
    expect(JSON.stringify(final.inputs)).toBe('{"__proto__":{"in":true}}');

    const jobs = enqueuesOf(enqueued).map((command) => json(command.job));
    expect(jobs.map((job) => job.nodeId)).toEqual(['constructor', 'toString']);
    // Bindings: exactly the bound object, `__proto__` included.
    expect(JSON.stringify(jobs[0]!.args)).toBe('{"__proto__":{"__proto__":{"x":1},"k":2},"toString":2}');
    // No bindings: every succeeded ancestor under nodes, by id.
    const args = jobs[1]!.args as { nodes: Record<string, unknown>; inputs: unknown };
    expect(Object.keys(args.nodes)).toEqual(['__proto__', 'constructor']);
    expect(JSON.stringify(args.nodes.constructor)).toBe('{"output":{"__proto__":{"y":3},"valueOf":4}}');
    expect(JSON.stringify(args.inputs)).toBe('{"__proto__":{"in":true}}');
  });

  it('ignores a result for a node id the run does not have, even one Object.prototype has', async () => {
    const workflow = parseWorkflow({ id: 'plain', nodes: [{ id: 'a', language: 'python', code }] });
    const started = await transition(createRunState({ id: 'r2', tenantId: 't1', workflow, inputs: {}, now: 0 }), { type: 'start', at: 1 });
    for (const nodeId of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const stray = { ...finished(started.state, 'a', {}), nodeId };
      const next = await transition(started.state, { type: 'node_finished', result: stray, at: 2 });
      expect({ nodeId, commands: next.commands }).toEqual({ nodeId, commands: [] });
      await expect(transition(started.state, { type: 'node_started', nodeId, executionId: stray.executionId, at: 2 })).resolves.toMatchObject({ commands: [] });
    }
  });
});

describe('checkOutput with keys named like Object.prototype members', () => {
  it('finds only own keys', () => {
    const declared = JSON.parse('{"toString": "string", "__proto__": "integer"}');
    expect(checkOutput('n', declared, {}).error?.message).toBe(
      'node "n" output does not match its declared outputs: output key "toString" is missing (declared as string); output key "__proto__" is missing (declared as integer)',
    );
    expect(checkOutput('n', declared, JSON.parse('{"toString": "s", "__proto__": 1}'))).toEqual({ warnings: [] });
    expect(checkOutput('n', { a: 'any' }, JSON.parse('{"a": 1, "constructor": 2}')).warnings).toEqual(['output key "constructor" is not declared in outputs']);
  });
});
