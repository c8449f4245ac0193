import { executionIdOf, type ExecJob, type ExecResult, type JsonObject } from '@podflow/protocol';
import { LocalDiskStore, PayloadStore, nodePayloadKey } from '@podflow/storage';
import { createRunState, parseWorkflow, transition, type EngineCommand, type RunState } from '@podflow/workflow';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUN_INLINE_BUDGET_FACTOR, RunPayloads } from './run-payloads';

const INLINE_MAX = 1024;
const code = 'def main(args): return {}';

function result(state: RunState, nodeId: string, extra: Partial<ExecResult>): ExecResult {
  const attempt = state.nodes[nodeId].attempts;
  return {
    executionId: executionIdOf(state.id, nodeId, attempt),
    tenantId: state.tenantId,
    runId: state.id,
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

  /** Orchestrator.apply without Redis: prepare, hydrate, transition, dehydrate. */
  async function apply(stored: RunState, event: Parameters<typeof transition>[1]) {
    const prepared = await payloads.prepareEvent(stored, event);
    const next = await transition(await payloads.hydrate(stored, prepared), prepared);
    return payloads.dehydrate(next.state, next.commands);
  }

  async function workerResult(state: RunState, nodeId: string, output: JsonObject): Promise<ExecResult> {
    const attempt = state.nodes[nodeId].attempts;
    const outputRef = await worker.offload(output, (sha256) => nodePayloadKey({ tenantId: state.tenantId, runId: state.id, nodeId, attempt, kind: 'output', sha256 }));
    return result(state, nodeId, outputRef ? { outputRef } : { output });
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
    const initial = createRunState({ id: 'r1', tenantId: 't1', workflow, inputs: { q: 1 }, now: 1 });
    let step = await apply(initial, { type: 'start', at: 2 });
    expect(jobsOf(step.commands)[0]).toMatchObject({ nodeId: 'a', args: { inputs: { q: 1 }, nodes: {} } });

    step = await apply(step.state, { type: 'node_finished', result: await workerResult(step.state, 'a', { data }), at: 3 });
    expect(step.state.nodes.a).toMatchObject({ status: 'succeeded', outputRef: { size: `{"data":""}`.length + data.length } });
    expect(step.state.nodes.a).not.toHaveProperty('output');
    const jobB = jobsOf(step.commands)[0]!;
    expect(jobB).not.toHaveProperty('args');
    expect(jobB.argsRef!.key).toMatch(/^tenants\/t1\/runs\/r1\/nodes\/b\/1\.args\.[0-9a-f]{64}\.json$/);
    expect(await worker.load(jobB.argsRef!)).toEqual({ inputs: { q: 1 }, nodes: { a: { output: { data } } } });

    step = await apply(step.state, { type: 'node_finished', result: await workerResult(step.state, 'b', { ok: true }), at: 4 });
    const jobC = jobsOf(step.commands)[0]!;
    expect(jobC.nodeId).toBe('c'); // the `when` read the loaded output
    expect(await worker.load(jobC.argsRef!)).toEqual({ data, n: 5000 });

    step = await apply(step.state, { type: 'node_finished', result: await workerResult(step.state, 'c', { n: 5000 }), at: 5 });
    expect({ status: step.state.status, error: step.state.error }).toEqual({ status: 'succeeded', error: undefined });
    expect(step.state).not.toHaveProperty('outputs');
    expect(step.state.outputsRef!.key).toMatch(/^tenants\/t1\/runs\/r1\/outputs\.[0-9a-f]{64}\.json$/);
    expect(JSON.stringify(step.state).length).toBeLessThan(INLINE_MAX * 4);

    const view = await payloads.hydrateForView(step.state);
    expect(view.outputs).toEqual({ echo: data, c: 5000 });
    expect(view.nodes.a.output).toEqual({ data });
    expect(view.nodes.b.output).toEqual({ ok: true });
  });

  it('keeps small payloads inline and writes no object', async () => {
    const workflow = parseWorkflow({ id: 'wf', nodes: [{ id: 'a', language: 'python', code }, { id: 'b', language: 'python', code }], edges: [{ from: 'a', to: 'b' }] });
    let step = await apply(createRunState({ id: 'r1', tenantId: 't1', workflow, inputs: {}, now: 1 }), { type: 'start', at: 2 });
    step = await apply(step.state, { type: 'node_finished', result: result(step.state, 'a', { output: { n: 1 } }), at: 3 });
    expect(jobsOf(step.commands)[0]!.args).toEqual({ inputs: {}, nodes: { a: { output: { n: 1 } } } });
    step = await apply(step.state, { type: 'node_finished', result: result(step.state, 'b', { output: { n: 2 } }), at: 4 });
    expect(step.state).toMatchObject({ status: 'succeeded', outputs: { b: { n: 2 } }, nodes: { a: { output: { n: 1 } }, b: { output: { n: 2 } } } });
    expect(JSON.stringify(step.state)).not.toMatch(/Ref/);
    expect(await readdir(root)).toEqual([]);
  });

  it('offloads a large output that arrived inline, and the largest outputs once the run passes its budget', async () => {
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    const workflow = parseWorkflow({ id: 'wf', nodes: ids.map((id) => ({ id, language: 'python', code })) });
    let step = await apply(createRunState({ id: 'r1', tenantId: 't1', workflow, inputs: {}, now: 1 }), { type: 'start', at: 2 });
    step = await apply(step.state, { type: 'node_finished', result: result(step.state, 'a', { output: { big: 'y'.repeat(3000) } }), at: 3 });
    expect(step.state.nodes.a.outputRef!.key).toMatch(/nodes\/a\/1\.output\./);
    // Five outputs of ~900 bytes each fit the inline size but not, together, the run's budget.
    for (const [index, id] of ids.slice(1).entries()) {
      step = await apply(step.state, { type: 'node_finished', result: result(step.state, id, { output: { v: String(index).repeat(880 + index) } }), at: 4 + index });
    }
    const inline = Object.values(step.state.nodes).filter((node) => node.output !== undefined);
    const inlineBytes = inline.reduce((sum, node) => sum + JSON.stringify(node.output).length, 0);
    expect(inlineBytes).toBeLessThanOrEqual(INLINE_MAX * RUN_INLINE_BUDGET_FACTOR);
    expect(step.state.nodes.f.outputRef).toBeDefined(); // the largest went first
    expect(step.state.nodes.b.output).toBeDefined();
    const view = await payloads.hydrateForView(step.state);
    expect(view.outputs).toMatchObject({ a: { big: 'y'.repeat(3000) }, f: { v: '4'.repeat(884) } });
  });

  it('turns an output lost from storage into SANDBOX_LOST and loads nothing for a stale result', async () => {
    const workflow = parseWorkflow({ id: 'wf', nodes: [{ id: 'a', language: 'python', code }] });
    const { state } = await apply(createRunState({ id: 'r1', tenantId: 't1', workflow, inputs: {}, now: 1 }), { type: 'start', at: 2 });
    const missing = { key: nodePayloadKey({ tenantId: 't1', runId: 'r1', nodeId: 'a', attempt: 1, kind: 'output', sha256: 'ab'.repeat(32) }), size: 10, sha256: 'ab'.repeat(32) };
    const lost = await payloads.prepareEvent(state, { type: 'node_finished', result: result(state, 'a', { outputRef: missing }), at: 3 });
    expect(lost.type === 'node_finished' && lost.result).toMatchObject({ status: 'failed', error: { code: 'SANDBOX_LOST', message: expect.stringMatching(/was lost in storage: stored payload .* is missing/) } });
    expect(lost.type === 'node_finished' && lost.result).not.toHaveProperty('outputRef');
    const next = await transition(state, lost);
    expect(jobsOf(next.commands).map((job) => job.attempt)).toEqual([2]); // retried

    const stale = { type: 'node_finished' as const, result: { ...result(state, 'a', { outputRef: missing }), executionId: 'r1.a.0' }, at: 3 };
    expect(await payloads.prepareEvent(state, stale)).toBe(stale);
  });

  it('names the payload when a referenced output cannot be read for the API', async () => {
    const workflow = parseWorkflow({ id: 'wf', nodes: [{ id: 'a', language: 'python', code }] });
    const state = createRunState({ id: 'r1', tenantId: 't1', workflow, inputs: {}, now: 1 });
    state.nodes.a = { status: 'succeeded', attempts: 1, outputRef: { key: 'tenants/t1/runs/r1/nodes/a/1.output.x.json', size: 2, sha256: 'ab'.repeat(32) }, timings: {} };
    await expect(payloads.hydrateForView(state)).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/output of node "a" in run r1 cannot be read: .*RUN_RETENTION_SECONDS/) });
  });
});
