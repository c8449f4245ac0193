import type { ExecResult, JsonObject } from '@podflow/protocol';
import { CompiledWorkflow } from './compiled-workflow';
import { applyEvents, createRunRecords } from './engine';
import { keptNodes } from './resume';
import { testRunDefinition } from './test-run';
import { memorySource } from './run-records';
import { DEFAULT_WORKFLOW_LIMITS, type EngineCommand, type EngineEvent, type NodeRecord, type RunRecord, type Workflow } from './types';
import { parseWorkflow } from './validate';

/** One run in memory: its records, changed only by writing each batch's changes back. */
class Run {
  commands: EngineCommand[] = [];
  private edges: Array<'pending' | 'fired' | 'not_fired'>;

  constructor(
    readonly compiled: CompiledWorkflow,
    public run: RunRecord,
    readonly nodes: Map<string, NodeRecord>,
    private readonly inputs: JsonObject = {},
  ) {
    this.edges = compiled.workflow.edges.map(() => 'pending');
  }

  static start(workflow: Workflow, id: string, resume?: { from: Run }): Promise<Run> {
    const compiled = new CompiledWorkflow(workflow);
    const kept = resume ? keptNodes(resume.from.compiled, resume.from.nodes, compiled, resume.from.run.id) : undefined;
    const { run, nodes } = createRunRecords(compiled, { id, tenantId: 't', now: 0, ...(kept ? { keep: { resumedFrom: resume!.from.run.id, kept } } : {}) });
    const created = new Run(compiled, run, nodes);
    return created.apply({ type: 'start', at: 1 }).then(() => created);
  }

  async apply(event: EngineEvent): Promise<void> {
    const changes = await applyEvents(this.compiled, this.run, memorySource({ inputs: this.inputs, edges: this.edges }, this.nodes), [event]);
    this.run = changes.run;
    for (const [id, node] of changes.nodes) this.nodes.set(id, node);
    for (const [index, edge] of changes.edges) this.edges[index] = edge;
    this.commands.push(...changes.commands);
  }

  /** The jobs enqueued so far, by node id, with their args. */
  enqueued(): Array<{ nodeId: string; args: JsonObject | undefined }> {
    return this.commands.flatMap((c) => (c.type === 'enqueue' ? [{ nodeId: c.job.nodeId, args: c.job.args }] : []));
  }

  /** Reports the latest execution of `nodeId` as finished. */
  finish(nodeId: string, outcome: { output: JsonObject } | { fail: string }): Promise<void> {
    const node = this.nodes.get(nodeId)!;
    const result = {
      executionId: node.executionId!,
      runId: this.run.id,
      tenantId: 't',
      nodeId,
      attempt: node.attempts,
      ...('output' in outcome ? { status: 'succeeded', output: outcome.output } : { status: 'failed', error: { code: 'CODE_EXECUTION_FAILED', message: outcome.fail } }),
      logs: { stdout: '', stderr: '', truncated: false },
      timings: { startedAt: 1, finishedAt: 2 },
    } as unknown as ExecResult;
    return this.apply({ type: 'node_finished', result, at: 2 });
  }

  status(): Record<string, string> {
    return Object.fromEntries([...this.nodes].map(([id, node]) => [id, node.status]));
  }
}

const chain = (cCode: string): Workflow =>
  parseWorkflow({
    id: 'chain',
    nodes: [
      { id: 'a', language: 'python', code: 'def main(args): return {"n": 1}' },
      { id: 'b', language: 'python', code: 'def main(args): return {"n": 2}' },
      { id: 'c', language: 'python', code: cCode },
    ],
    edges: [
      { from: 'a', to: 'b' },
      { from: 'b', to: 'c' },
    ],
  });

/** a → b → c where c failed: the run to resume. */
async function failedAtC(): Promise<Run> {
  const first = await Run.start(chain('def main(args): raise Exception("bug")'), 'first');
  await first.finish('a', { output: { n: 1 } });
  await first.finish('b', { output: { n: 2 } });
  await first.finish('c', { fail: 'bug' });
  expect(first.run.status).toBe('failed');
  return first;
}

describe('resuming a run (keptNodes, createRunRecords with resume)', () => {
  it('keeps the succeeded nodes and runs only the failed one, with the kept outputs as its args', async () => {
    const first = await failedAtC();
    const fixed = chain('def main(args): return {"sum": 3}');
    const resumed = await Run.start(fixed, 'second', { from: first });
    expect(resumed.run).toMatchObject({ status: 'running', resumedFrom: 'first' });
    expect(resumed.enqueued()).toEqual([{ nodeId: 'c', args: { inputs: {}, nodes: { a: { output: { n: 1 } }, b: { output: { n: 2 } } } } }]);
    expect(resumed.nodes.get('a')).toMatchObject({ status: 'succeeded', attempts: 1, keptFrom: 'first', output: { n: 1 } });
    // Their events say so, for anyone following the new run's stream.
    const emitted = resumed.commands.flatMap((c) => (c.type === 'emit' && c.event.type === 'node' ? [`${c.event.nodeId}:${c.event.status}`] : []));
    expect(emitted).toEqual(['a:succeeded', 'b:succeeded', 'c:queued']);
    await resumed.finish('c', { output: { sum: 3 } });
    expect(resumed.run).toMatchObject({ status: 'succeeded', outputs: { c: { sum: 3 } } });
  });

  it('runs a changed node again, and everything after it', async () => {
    const first = await failedAtC();
    const edited = chain('def main(args): return {}');
    edited.nodes[1] = { ...edited.nodes[1]!, code: 'def main(args): return {"n": 20}' };
    expect([...keptNodes(first.compiled, first.nodes, new CompiledWorkflow(edited), 'first').keys()]).toEqual(['a']);
    const resumed = await Run.start(edited, 'second', { from: first });
    expect(resumed.enqueued().map((job) => job.nodeId)).toEqual(['b']);
    expect(resumed.status()).toEqual({ a: 'succeeded', b: 'queued', c: 'pending' });
  });

  it('keeps nothing downstream of a node that did not succeed, such as an error branch whose upstream runs again', async () => {
    const workflow = parseWorkflow({
      id: 'branch',
      nodes: [
        { id: 'a', language: 'python', code: 'def main(args): return {}' },
        { id: 'onError', language: 'python', code: 'def main(args): return {"handled": True}' },
        { id: 'after', language: 'python', code: 'def main(args): return {}' },
      ],
      edges: [
        { from: 'a', to: 'onError', on: 'failure' },
        { from: 'onError', to: 'after' },
      ],
    });
    const first = await Run.start(workflow, 'first');
    await first.finish('a', { fail: 'flaky' });
    await first.finish('onError', { output: { handled: true } });
    await first.finish('after', { fail: 'bug' });
    expect(first.status()).toEqual({ a: 'failed', onError: 'succeeded', after: 'failed' });
    expect(keptNodes(first.compiled, first.nodes, first.compiled, 'first').size).toBe(0);
    // a succeeds this time: the error branch is skipped, and what follows it too.
    const resumed = await Run.start(workflow, 'second', { from: first });
    await resumed.finish('a', { output: {} });
    expect(resumed.status()).toEqual({ a: 'succeeded', onError: 'skipped', after: 'skipped' });
    expect(resumed.run.status).toBe('succeeded');
  });

  it("evaluates a kept node's edge conditions on its kept output", async () => {
    const workflow = parseWorkflow({
      id: 'when',
      nodes: [
        { id: 'a', language: 'python', code: 'def main(args): return {"go": False}' },
        { id: 'yes', language: 'python', code: 'def main(args): return {}' },
        { id: 'no', language: 'python', code: 'def main(args): return {}' },
      ],
      edges: [
        { from: 'a', to: 'yes', when: 'nodes.a.output.go = true' },
        { from: 'a', to: 'no', when: 'nodes.a.output.go = false' },
      ],
    });
    const first = await Run.start(workflow, 'first');
    await first.finish('a', { output: { go: false } });
    await first.finish('no', { fail: 'bug' });
    const resumed = await Run.start(workflow, 'second', { from: first });
    expect(resumed.status()).toEqual({ a: 'succeeded', yes: 'skipped', no: 'queued' });
    expect(resumed.run.open).toBe(1);
  });

  it('finishes at once when every node is kept (a run that failed after its nodes, in its output expression)', async () => {
    const workflow = parseWorkflow({ id: 'out', nodes: [{ id: 'a', language: 'python', code: 'def main(args): return {"v": 1}' }], output: '{ "v": nodes.a.output.v }' });
    const first = await Run.start(workflow, 'first');
    await first.finish('a', { output: { v: 1 } });
    const resumed = await Run.start(workflow, 'second', { from: first });
    expect(resumed.enqueued()).toEqual([]);
    expect(resumed.run).toMatchObject({ status: 'succeeded', outputs: { v: 1 } });
  });
});

describe('test run of one node (testRunDefinition, with its upstream kept)', () => {
  const workflow = parseWorkflow({
    id: 'shop',
    nodes: [
      { id: 'load', language: 'python', code: 'def main(args): return {"rows": [1, 2]}' },
      { id: 'price', language: 'python', code: 'def main(args): return {"total": 3}' },
      { id: 'onError', language: 'python', code: 'def main(args): return {}' },
      { id: 'mail', language: 'python', code: 'def main(args): return {}' },
    ],
    edges: [
      { from: 'load', to: 'price', when: 'nodes.load.output.rows' },
      { from: 'price', to: 'onError', on: 'failure' },
      { from: 'price', to: 'mail' },
    ],
    output: '{ "total": nodes.price.output.total }',
  });

  it('keeps the node and its upstream only, with the edited code, edges into it always firing, and no output expression', () => {
    const { workflow: derived, upstream } = testRunDefinition(workflow, 'price', 'def main(args): return {"total": 4}');
    expect(upstream).toEqual(['load']);
    expect(derived.nodes.map((n) => [n.id, n.code])).toEqual([
      ['load', 'def main(args): return {"rows": [1, 2]}'],
      ['price', 'def main(args): return {"total": 4}'],
    ]);
    expect(derived.edges).toEqual([{ from: 'load', to: 'price', on: 'always' }]);
    expect(derived.output).toBeUndefined();
    expect(workflow.nodes[1]!.code).toBe('def main(args): return {"total": 3}'); // the definition itself is untouched
  });

  it('runs only the node, with its upstream values as args, even on an error branch', async () => {
    const { workflow: derived, upstream } = testRunDefinition(workflow, 'onError');
    expect(upstream).toEqual(['load', 'price']);
    const compiled = new CompiledWorkflow(derived);
    const kept = new Map(upstream.map((id) => [id, { keptFrom: 'sample', attempts: 0, output: { from: id }, timings: {} }]));
    const { run, nodes } = createRunRecords(compiled, { id: 'test-1', tenantId: 't', now: 0, keep: { kept, test: { nodeId: 'onError' } } });
    const test = new Run(compiled, run, nodes);
    await test.apply({ type: 'start', at: 1 });
    expect(test.run).toMatchObject({ status: 'running', kept: 2, test: { nodeId: 'onError' } });
    expect(test.enqueued()).toEqual([{ nodeId: 'onError', args: { inputs: {}, nodes: { load: { output: { from: 'load' } }, price: { output: { from: 'price' } } } } }]);
    await test.finish('onError', { output: { handled: true } });
    expect(test.run).toMatchObject({ status: 'succeeded', outputs: { onError: { handled: true } } });
  });

  it('refuses a node the workflow does not have (404 naming its nodes) and code that cannot run (400)', () => {
    expect(() => testRunDefinition(workflow, 'pirce')).toThrow('workflow "shop" has no node "pirce" (its nodes: "load", "price", "onError", "mail")');
    expect(() => testRunDefinition(workflow, 'price', '  ')).toThrow(/node "price".*code.*is empty/s);
  });
});

describe('kept nodes, edge cases', () => {
  it('does not evaluate a condition between two kept nodes (it cannot change anything, so it must not fail the run)', async () => {
    const workflow = parseWorkflow({
      id: 'cond',
      nodes: [
        { id: 'a', language: 'python', code: 'def main(args): return {}' },
        { id: 'b', language: 'python', code: 'def main(args): return {}' },
        { id: 'c', language: 'python', code: 'def main(args): return {}' },
      ],
      edges: [
        { from: 'a', to: 'b', when: '$number("x")' },
        { from: 'b', to: 'c' },
      ],
    });
    const compiled = new CompiledWorkflow(workflow);
    const kept = new Map(['a', 'b'].map((id) => [id, { keptFrom: 'sample', attempts: 0, output: {}, timings: {} }]));
    const { run, nodes } = createRunRecords(compiled, { id: 'r', tenantId: 't', now: 0, keep: { kept, test: { nodeId: 'c' } } });
    const test = new Run(compiled, run, nodes);
    await test.apply({ type: 'start', at: 1 });
    expect(test.run.status).toBe('running');
    expect(test.enqueued().map((job) => job.nodeId)).toEqual(['c']);
  });

  it('decides what a 10,000-node chain keeps without recursion, the nodes listed downstream first', async () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => `n${i}`);
    const workflow = parseWorkflow({
      id: 'long',
      nodes: [...ids].reverse().map((id) => ({ id, language: 'python', code: 'def main(args): return {}' })),
      edges: ids.slice(1).map((id, i) => ({ from: ids[i]!, to: id })),
    }, { ...DEFAULT_WORKFLOW_LIMITS, maxNodes: 10_000 });
    const compiled = new CompiledWorkflow(workflow);
    const records = new Map(ids.map((id, i) => [id, { status: i === ids.length - 1 ? 'failed' : 'succeeded', attempts: 1, output: {}, timings: {} } as NodeRecord]));
    expect(keptNodes(compiled, records, compiled, 'first').size).toBe(9_999);
  });
});
