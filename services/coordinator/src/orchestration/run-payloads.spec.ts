import { executionIdOf, type ExecJob, type ExecResult, type JsonObject } from '@podflow/protocol';
import { LocalDiskStore, PayloadStore, nodePayloadKey } from '@podflow/storage';
import { CompiledWorkflow, applyEvents, createRunRecords, parseWorkflow, type EdgeResolution, type EngineCommand, type EngineEvent, type NodeRecord, type RunRecord, type Workflow } from '@podflow/workflow';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunPayloads } from './run-payloads';
import { storedNode } from './run-store';

const INLINE_MAX = 1024;
const code = 'def main(args): return {}';

/** A run's records as the store keeps them: node outputs with a reference are not stored. */
interface Stored {
  compiled: CompiledWorkflow;
  run: RunRecord;
  nodes: Map<string, NodeRecord>;
  edges: Map<number, EdgeResolution>;
  inputs: JsonObject;
}

function create(workflow: Workflow, inputs: JsonObject = {}): Stored {
  const compiled = new CompiledWorkflow(workflow);
  const { run, nodes } = createRunRecords(compiled, { id: 'r1', tenantId: 't1', now: 1 });
  return { compiled, run, nodes, edges: new Map(), inputs };
}

function result(state: Stored, nodeId: string, extra: Partial<ExecResult>): ExecResult {
  const attempt = state.nodes.get(nodeId)!.attempts;
  return {
    executionId: executionIdOf(state.run.id, nodeId, attempt),
    tenantId: state.run.tenantId,
    runId: state.run.id,
    nodeId,
    attempt,
    status: 'succeeded',
    logs: { stdout: '', stderr: '', truncated: false },
    warnings: [],
    timings: { enqueuedAt: 0, startedAt: 0, finishedAt: 0, queueWaitMs: 0, executionMs: 0 },
    workerId: 'w1',
    ...extra,
  };
}

function jobsOf(commands: EngineCommand[]): ExecJob[] {
  return commands.flatMap((command) => (command.type === 'enqueue' ? [command.job] : []));
}

describe('RunPayloads', () => {
  let root: string;
  let disk: LocalDiskStore;
  let payloads: RunPayloads;
  /** What a worker does with an output over the inline size. */
  let worker: PayloadStore;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'podflow-run-payloads-'));
    disk = new LocalDiskStore({ root, publicBaseUrl: 'http://localhost:8080', secret: 's3cret-s3cret-s3cret', defaultTtlSeconds: 60 });
    payloads = new RunPayloads(disk, { inlineMaxBytes: INLINE_MAX, cacheMaxBytes: 1024 * 1024 });
    worker = new PayloadStore(disk, { inlineMaxBytes: INLINE_MAX });
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  /** The orchestrator's batch without Redis: hydrate what is read, prepare, apply, dehydrate, store. */
  async function apply(stored: Stored, event: EngineEvent): Promise<{ state: Stored; commands: EngineCommand[] }> {
    const source = {
      nodes: async (ids: readonly string[]) => new Map(await Promise.all(ids.map(async (id) => [id, await payloads.hydrateNode(stored.run, id, stored.nodes.get(id)!)] as const))),
      edges: async (indexes: readonly number[]) => new Map(indexes.map((i) => [i, stored.edges.get(i) ?? 'pending'] as const)),
      inputs: async () => stored.inputs,
    };
    const node = event.type === 'node_finished' ? stored.nodes.get(event.result.nodeId) : undefined;
    const prepared = await payloads.prepareEvent(stored.run, node, event);
    const changes = await payloads.dehydrate(await applyEvents(stored.compiled, stored.run, source, [prepared]));
    const nodes = new Map(stored.nodes);
    for (const [id, record] of changes.nodes) nodes.set(id, storedNode(record) as NodeRecord);
    const edges = new Map(stored.edges);
    for (const [i, e] of changes.edges) edges.set(i, e);
    const run = { ...changes.run };
    if (run.outputsRef) delete run.outputs;
    return { state: { ...stored, run, nodes, edges }, commands: changes.commands };
  }

  async function workerResult(state: Stored, nodeId: string, output: JsonObject): Promise<ExecResult> {
    const attempt = state.nodes.get(nodeId)!.attempts;
    const outputRef = await worker.offload(output, (sha256) => nodePayloadKey({ tenantId: state.run.tenantId, runId: state.run.id, nodeId, attempt, kind: 'output', sha256 }));
    return result(state, nodeId, outputRef ? { outputRef } : { output });
  }

  /** What the API shows: outputs loaded. */
  async function view(state: Stored) {
    const nodes = new Map(await Promise.all([...state.nodes].map(async ([id, n]) => [id, await payloads.hydrateNode(state.run, id, n)] as const)));
    return { outputs: await payloads.runOutputs(state.run), nodes };
  }

  it('passes a large output downstream by reference: to args, bindings and the run outputs, never into the stored state', async () => {
    const workflow = parseWorkflow({
      id: 'wf',
      // Leaf values only: under Jest, objects that went through structuredClone come from another
      // realm and the engine's plain-object check refuses them (plain Node is fine).
      output: '{ "echo": nodes.a.output.data, "c": nodes.c.output.n }',
      nodes: [
        { id: 'a', language: 'python', code },
        { id: 'b', language: 'python', code },
        { id: 'c', language: 'python', code, inputs: { data: 'nodes.a.output.data', n: '$length(nodes.a.output.data)' } },
      ],
      edges: [{ from: 'a', to: 'b' }, { from: 'b', to: 'c', when: '$length(nodes.a.output.data) > 4000' }],
    });
    const data = 'x'.repeat(5000);
    const initial = create(workflow, { q: 1 });
    let step = await apply(initial, { type: 'start', at: 2 });
    expect(jobsOf(step.commands)[0]).toMatchObject({ nodeId: 'a', args: { inputs: { q: 1 }, nodes: {} } });

    step = await apply(step.state, { type: 'node_finished', result: await workerResult(step.state, 'a', { data }), at: 3 });
    expect(step.state.nodes.get('a')).toMatchObject({ status: 'succeeded', outputRef: { size: `{"data":""}`.length + data.length } });
    expect(step.state.nodes.get('a')).not.toHaveProperty('output');
    const jobB = jobsOf(step.commands)[0]!;
    expect(jobB).not.toHaveProperty('args');
    expect(jobB.argsRef!.key).toMatch(/^tenants\/t1\/runs\/r1\/nodes\/b\/1\.args\.[0-9a-f]{64}\.json$/);
    expect(await worker.load(jobB.argsRef!)).toEqual({ inputs: { q: 1 }, nodes: { a: { output: { data } } } });

    step = await apply(step.state, { type: 'node_finished', result: await workerResult(step.state, 'b', { ok: true }), at: 4 });
    const jobC = jobsOf(step.commands)[0]!;
    expect(jobC.nodeId).toBe('c'); // the `when` read the loaded output
    expect(await worker.load(jobC.argsRef!)).toEqual({ data, n: 5000 });

    step = await apply(step.state, { type: 'node_finished', result: await workerResult(step.state, 'c', { n: 5000 }), at: 5 });
    expect({ status: step.state.run.status, error: step.state.run.error }).toEqual({ status: 'succeeded', error: undefined });
    expect(step.state.run).not.toHaveProperty('outputs');
    expect(step.state.run.outputsRef!.key).toMatch(/^tenants\/t1\/runs\/r1\/outputs\.[0-9a-f]{64}\.json$/);
    const storedBytes = JSON.stringify([step.state.run, ...step.state.nodes.values()]).length;
    expect(storedBytes).toBeLessThan(INLINE_MAX * 4);

    const shown = await view(step.state);
    expect(shown.outputs).toEqual({ echo: data, c: 5000 });
    expect(shown.nodes.get('a')!.output).toEqual({ data });
    expect(shown.nodes.get('b')!.output).toEqual({ ok: true });
  });

  it('keeps small payloads inline and writes no object', async () => {
    const workflow = parseWorkflow({ id: 'wf', nodes: [{ id: 'a', language: 'python', code }, { id: 'b', language: 'python', code }], edges: [{ from: 'a', to: 'b' }] });
    let step = await apply(create(workflow), { type: 'start', at: 2 });
    step = await apply(step.state, { type: 'node_finished', result: result(step.state, 'a', { output: { n: 1 } }), at: 3 });
    expect(jobsOf(step.commands)[0]!.args).toEqual({ inputs: {}, nodes: { a: { output: { n: 1 } } } });
    step = await apply(step.state, { type: 'node_finished', result: result(step.state, 'b', { output: { n: 2 } }), at: 4 });
    expect(step.state.run).toMatchObject({ status: 'succeeded', outputs: { b: { n: 2 } } });
    expect(step.state.nodes.get('a')).toMatchObject({ output: { n: 1 } });
    expect(step.state.nodes.get('b')).toMatchObject({ output: { n: 2 } });
    expect(JSON.stringify([step.state.run, ...step.state.nodes.values()])).not.toMatch(/Ref/);
    expect(await readdir(root)).toEqual([]);
  });

  it('offloads a large output that arrived inline, and keeps outputs under the inline size inline', async () => {
    const ids = ['a', 'b', 'c'];
    const workflow = parseWorkflow({ id: 'wf', nodes: ids.map((id) => ({ id, language: 'python', code })) });
    let step = await apply(create(workflow), { type: 'start', at: 2 });
    step = await apply(step.state, { type: 'node_finished', result: result(step.state, 'a', { output: { big: 'y'.repeat(3000) } }), at: 3 });
    expect(step.state.nodes.get('a')!.outputRef!.key).toMatch(/nodes\/a\/1\.output\./);
    expect(step.state.nodes.get('a')).not.toHaveProperty('output');
    step = await apply(step.state, { type: 'node_finished', result: result(step.state, 'b', { output: { v: 'z'.repeat(900) } }), at: 4 });
    expect(step.state.nodes.get('b')).toMatchObject({ output: { v: 'z'.repeat(900) } });
    expect(step.state.nodes.get('b')).not.toHaveProperty('outputRef');
    step = await apply(step.state, { type: 'node_finished', result: result(step.state, 'c', { output: { n: 1 } }), at: 5 });
    const shown = await view(step.state);
    expect(shown.outputs).toMatchObject({ a: { big: 'y'.repeat(3000) }, b: { v: 'z'.repeat(900) }, c: { n: 1 } });
  });

  it('turns an output lost from storage into SANDBOX_LOST and loads nothing for a stale result', async () => {
    const workflow = parseWorkflow({ id: 'wf', nodes: [{ id: 'a', language: 'python', code }] });
    const { state } = await apply(create(workflow), { type: 'start', at: 2 });
    const awaited = state.nodes.get('a');
    const missing = { key: nodePayloadKey({ tenantId: 't1', runId: 'r1', nodeId: 'a', attempt: 1, kind: 'output', sha256: 'ab'.repeat(32) }), size: 10, sha256: 'ab'.repeat(32) };
    const lost = await payloads.prepareEvent(state.run, awaited, { type: 'node_finished', result: result(state, 'a', { outputRef: missing }), at: 3 });
    expect(lost.type === 'node_finished' && lost.result).toMatchObject({ status: 'failed', error: { code: 'SANDBOX_LOST', message: expect.stringMatching(/was lost in storage: stored payload .* is missing/) } });
    expect(lost.type === 'node_finished' && lost.result).not.toHaveProperty('outputRef');
    const next = await apply(state, lost);
    expect(jobsOf(next.commands).map((job) => job.attempt)).toEqual([2]); // retried

    const stale = { type: 'node_finished' as const, result: { ...result(state, 'a', { outputRef: missing }), executionId: 'r1.a.0' }, at: 3 };
    expect(await payloads.prepareEvent(state.run, awaited, stale)).toBe(stale);
  });

  it('names the payload when a referenced output cannot be read for the API', async () => {
    const workflow = parseWorkflow({ id: 'wf', nodes: [{ id: 'a', language: 'python', code }] });
    const state = create(workflow);
    state.nodes.set('a', { status: 'succeeded', attempts: 1, outputRef: { key: 'tenants/t1/runs/r1/nodes/a/1.output.x.json', size: 2, sha256: 'ab'.repeat(32) }, timings: {}, waiting: 0, fired: 0 });
    await expect(view(state)).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/output of node "a" in run r1 cannot be read: .*RUN_RETENTION_SECONDS/) });
  });
});
