import { join } from 'node:path';
import type { ExecResult } from '@podflow/protocol';
import { CompiledWorkflow } from './compiled-workflow';
import { applyEvents, createRunRecords, createRunState, nodesTouchedBy, transition, type TransitionOptions } from './engine';
import { loadNodes, newStep, pendingRecord } from './engine-context';
import { nodeReadsOf } from './expression-reads';
import { loadFixtures, runFixture } from './testing/fixture-runner';
import type { EdgeResolution, EngineCommand, EngineEvent, NodeRecord, RunRecord, RunSource } from './types';
import { parseWorkflow } from './validate';

/** Freezes `value` and everything in it: a change to it then throws (specs run in strict mode). */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<string | symbol, unknown>)[key]);
  }
  return value;
}

/**
 * Records of one run held in memory, changed only by writing a batch's changes back, as the
 * coordinator's store does. Every record it hands out is frozen: the engine copies a record
 * before changing it, and a change to the source's own records (which the coordinator caches)
 * fails the spec.
 */
class Records {
  readonly nodes = new Map<string, NodeRecord>();
  readonly edges = new Map<number, EdgeResolution>();
  reads = 0;

  constructor(
    public run: RunRecord,
    nodes: Map<string, NodeRecord>,
    private readonly inputs: Record<string, never> | object = {},
  ) {
    for (const [id, node] of nodes) this.nodes.set(id, deepFreeze(structuredClone(node)));
    deepFreeze(this.run);
    deepFreeze(this.inputs);
  }

  source(): RunSource {
    return {
      nodes: async (ids) => {
        this.reads += ids.length;
        return new Map(ids.filter((id) => this.nodes.has(id)).map((id) => [id, this.nodes.get(id)!]));
      },
      edges: async (indexes) => new Map(indexes.map((index) => [index, this.edges.get(index) ?? 'pending'])),
      inputs: async () => this.inputs as never,
    };
  }

  /** Nodes written by the last `apply`. */
  lastWritten = 0;

  async apply(compiled: CompiledWorkflow, events: EngineEvent[], options: TransitionOptions = {}): Promise<EngineCommand[]> {
    const changes = await applyEvents(compiled, this.run, this.source(), events, options);
    this.lastWritten = changes.nodes.size;
    this.run = deepFreeze(changes.run);
    for (const [id, node] of changes.nodes) this.nodes.set(id, deepFreeze(node));
    for (const [index, edge] of changes.edges) this.edges.set(index, edge);
    return changes.commands;
  }

  snapshot() {
    return { run: this.run, nodes: [...this.nodes.entries()].sort(), edges: [...this.edges.entries()].sort((a, b) => a[0] - b[0]) };
  }
}

const fixtures = loadFixtures(join(__dirname, '..', 'fixtures'));

/** The follow-up events a step's commands ask for (what a store writes to the run's inbox). */
function followUps(commands: EngineCommand[]): EngineEvent[] {
  return commands.flatMap((command): EngineEvent[] => {
    if (command.type === 'resolve_edges') return [{ type: 'resolve_edges', nodeId: command.nodeId, at: command.at }];
    if (command.type === 'start_roots') return [{ type: 'start_roots', at: command.at }];
    if (command.type === 'end_run') return [{ type: 'end_run', from: command.from, at: command.at }];
    return [];
  });
}

/** Applies `event`, then every follow-up it leads to, one step each; the other commands, and the nodes each step wrote. */
async function settle(store: Records, compiled: CompiledWorkflow, event: EngineEvent, options: TransitionOptions) {
  const commands: EngineCommand[] = [];
  const written: number[] = [];
  const queue = [event];
  for (let next = queue.shift(); next; next = queue.shift()) {
    const step = await store.apply(compiled, [next], options);
    written.push(store.lastWritten);
    const follow = followUps(step);
    queue.push(...follow);
    commands.push(...step.filter((command) => !['resolve_edges', 'start_roots', 'end_run'].includes(command.type)));
  }
  return { commands, written };
}

const sortedCommands = (list: EngineCommand[]) => list.map((command) => JSON.stringify(command)).sort();

/** `node_finished` of execution `r.<nodeId>.1` of run `r`: `{}` when it succeeded, a code error when it failed. */
function finished(nodeId: string, status: 'succeeded' | 'failed', at: number): EngineEvent {
  return {
    type: 'node_finished',
    at,
    result: {
      executionId: `r.${nodeId}.1`,
      tenantId: 't',
      runId: 'r',
      nodeId,
      attempt: 1,
      status,
      ...(status === 'succeeded' ? { output: {} } : { error: { code: 'CODE_EXECUTION_FAILED', message: 'boom', nodeId } }),
      logs: { stdout: '', stderr: '', truncated: false },
      warnings: [],
      timings: { enqueuedAt: 0, startedAt: 0, finishedAt: 0, queueWaitMs: 0, executionMs: 0 },
      workerId: 'w',
    },
  };
}

describe('applyEvents in batches', () => {
  it.each(fixtures.map((fixture) => [fixture.file, fixture] as const))('%s: every split of the events into batches gives the same records and commands', async (_file, fixture) => {
    // The fixture's events, as the whole-state engine saw them.
    const events = (await runFixture(fixture)).map((entry) => entry.event);
    const workflow = parseWorkflow(fixture.workflow);
    const compiled = new CompiledWorkflow(workflow);
    const fresh = () => {
      const { run, nodes } = createRunRecords(compiled, { id: 'run-1', tenantId: 'tenant-1', now: 0 });
      return new Records(run, nodes, fixture.inputs ?? {});
    };
    const oneByOne = fresh();
    const sequential: EngineCommand[] = [];
    for (const event of events) sequential.push(...(await oneByOne.apply(compiled, [event])));

    // All at once, and in batches of 2 and 3.
    for (const size of [events.length, 2, 3]) {
      const batched = fresh();
      const commands: EngineCommand[] = [];
      for (let i = 0; i < events.length; i += size) commands.push(...(await batched.apply(compiled, events.slice(i, i + size))));
      expect({ size, ...batched.snapshot() }).toEqual({ size, ...oneByOne.snapshot() });
      expect({ size, commands }).toEqual({ size, commands: sequential });
    }
  });
});

describe('a store that writes a node\'s record only once something touches it', () => {
  it.each(fixtures.map((fixture) => [fixture.file, fixture] as const))('%s: with no record of the pending nodes, the same records and commands', async (_file, fixture) => {
    const events = (await runFixture(fixture)).map((entry) => entry.event);
    const compiled = new CompiledWorkflow(parseWorkflow(fixture.workflow));
    const { run, nodes } = createRunRecords(compiled, { id: 'run-1', tenantId: 'tenant-1', now: 0 });
    for (const [id, node] of nodes) expect(node).toEqual(pendingRecord(compiled, id));
    const whole = new Records(run, nodes, fixture.inputs ?? {});
    const sparse = new Records(run, new Map(), fixture.inputs ?? {});
    const wholeCommands: EngineCommand[] = [];
    const sparseCommands: EngineCommand[] = [];
    for (const event of events) {
      wholeCommands.push(...(await whole.apply(compiled, [event])));
      sparseCommands.push(...(await sparse.apply(compiled, [event])));
    }
    expect(sparseCommands).toEqual(wholeCommands);
    // What the sparse store never wrote is still pending, exactly as created.
    for (const id of compiled.nodeIds) if (!sparse.nodes.has(id)) sparse.nodes.set(id, pendingRecord(compiled, id));
    expect(sparse.snapshot()).toEqual(whole.snapshot());
  });

  it('a node the workflow does not have is still an error, not a pending record', async () => {
    const compiled = new CompiledWorkflow(parseWorkflow({ id: 'one', nodes: [{ id: 'a', language: 'python', code: 'def main(a): return {}' }], edges: [] }));
    const { run } = createRunRecords(compiled, { id: 'r', tenantId: 't', now: 0 });
    const store = new Records(run, new Map());
    await store.apply(compiled, [{ type: 'start', at: 1 }]);
    expect(store.nodes.get('a')).toMatchObject({ status: 'queued' });
    await expect(store.apply(compiled, [{ type: 'node_started', nodeId: 'ghost', executionId: 'r.ghost.1', at: 2 }])).resolves.toEqual([]);
    await expect(loadNodes(newStep(compiled, store.run, store.source()), ['ghost'])).rejects.toThrow('run r has no node "ghost"');
  });
});

describe('cost of a transition', () => {
  const result = (runId: string, nodeId: string): ExecResult => ({
    executionId: `${runId}.${nodeId}.1`,
    tenantId: 't',
    runId,
    nodeId,
    attempt: 1,
    status: 'succeeded',
    output: { ok: true },
    logs: { stdout: '', stderr: '', truncated: false },
    warnings: [],
    timings: { enqueuedAt: 0, startedAt: 0, finishedAt: 0, queueWaitMs: 0, executionMs: 0 },
    workerId: 'w',
  });

  it('a result in a fan-out of 2,000 reads a constant number of node records, whatever the run size', async () => {
    const leaves = 2_000;
    const nodes = [{ id: 'root', language: 'python', code: 'def main(a): return {}' }, ...Array.from({ length: leaves }, (_, i) => ({ id: `leaf${i}`, language: 'python', code: 'def main(a): return {}' }))];
    const edges = Array.from({ length: leaves }, (_, i) => ({ from: 'root', to: `leaf${i}` }));
    const compiled = new CompiledWorkflow(parseWorkflow({ id: 'fan', nodes, edges }, { ...(await import('./types')).DEFAULT_WORKFLOW_LIMITS, maxNodes: 10_000 }));
    const { run, nodes: records } = createRunRecords(compiled, { id: 'r', tenantId: 't', now: 0 });
    const store = new Records(run, records);
    await store.apply(compiled, [{ type: 'start', at: 1 }]);
    await store.apply(compiled, [{ type: 'node_finished', result: result('r', 'root'), at: 2 }]);
    const readsPerResult: number[] = [];
    for (let i = 0; i < leaves - 1; i++) {
      store.reads = 0;
      await store.apply(compiled, [{ type: 'node_finished', result: result('r', `leaf${i}`), at: 3 + i }]);
      readsPerResult.push(store.reads);
    }
    expect(Math.max(...readsPerResult)).toBe(1);
    // The last leaf completes the run: its own record, then the other leaves once, for `outputs`.
    store.reads = 0;
    const commands = await store.apply(compiled, [{ type: 'node_finished', result: result('r', `leaf${leaves - 1}`), at: 10_000 }]);
    expect(store.run.status).toBe('succeeded');
    expect(store.run.open).toBe(0);
    expect(commands.filter((c) => c.type === 'emit' && c.event.type === 'run')).toHaveLength(1);
    expect(store.reads).toBe(leaves);
  });
});

describe('a fan-out wider than edgePage', () => {
  const code = 'def main(a): return {}';
  const leaves = 11;
  // root → leaf0..leaf10; leaf4's edge has a false `when` (leaf4 is skipped, and so is its successor
  // `after4`); every leaf also feeds `join`, which waits for all of them.
  const workflow = parseWorkflow({
    id: 'wide',
    nodes: [
      { id: 'root', language: 'python', code },
      ...Array.from({ length: leaves }, (_, i) => ({ id: `leaf${i}`, language: 'python', code })),
      { id: 'after4', language: 'python', code },
      { id: 'join', language: 'python', code },
    ],
    edges: [
      ...Array.from({ length: leaves }, (_, i) => ({ from: 'root', to: `leaf${i}`, ...(i === 4 ? { when: 'nodes.root.output.n > 5' } : {}) })),
      { from: 'leaf4', to: 'after4' },
      ...Array.from({ length: leaves }, (_, i) => ({ from: `leaf${i}`, to: 'join', on: 'always' as const })),
    ],
  });
  const compiled = new CompiledWorkflow(workflow);
  const rootDone = (at: number): EngineEvent => ({
    type: 'node_finished',
    at,
    result: { executionId: 'r.root.1', tenantId: 't', runId: 'r', nodeId: 'root', attempt: 1, status: 'succeeded', output: { n: 1 }, logs: { stdout: '', stderr: '', truncated: false }, warnings: [], timings: { enqueuedAt: 0, startedAt: 0, finishedAt: 0, queueWaitMs: 0, executionMs: 0 }, workerId: 'w' },
  });
  const started = async () => {
    const { run, nodes } = createRunRecords(compiled, { id: 'r', tenantId: 't', now: 0 });
    const store = new Records(run, nodes);
    await store.apply(compiled, [{ type: 'start', at: 1 }]);
    return store;
  };
  /** Applies `event`, then every `resolve_edges` it leads to, as a store's inbox would; the commands, and nodes written per step. */
  const drive = async (store: Records, event: EngineEvent, options: TransitionOptions) => {
    const commands: EngineCommand[] = [];
    const written: number[] = [];
    for (let next: EngineEvent | undefined = event; next; ) {
      const step = await store.apply(compiled, [next], options);
      written.push(store.lastWritten);
      const follow = step.filter((command) => command.type === 'resolve_edges');
      expect(follow.length).toBeLessThanOrEqual(1);
      commands.push(...step.filter((command) => command.type !== 'resolve_edges'));
      next = follow[0]?.type === 'resolve_edges' ? { type: 'resolve_edges', nodeId: follow[0].nodeId, at: follow[0].at } : undefined;
    }
    return { commands, written };
  };

  it('readies it a page per step, and ends in the records and commands of all at once (in page order)', async () => {
    const whole = await started();
    const all = await drive(whole, rootDone(2), {});
    expect(all.written).toHaveLength(1);
    for (const page of [1, 3, 4, 10]) {
      const paged = await started();
      const { commands, written } = await drive(paged, rootDone(2), { edgePage: page });
      // ceil(11 / page) steps, each writing its page's targets and the root's count (the page that
      // skips leaf4 also writes what that skip resolves: after4 and join).
      expect({ page, steps: written.length }).toEqual({ page, steps: Math.ceil(leaves / page) });
      expect({ page, most: Math.max(...written) }).toEqual({ page, most: Math.min(page, leaves) + 3 });
      expect({ page, ...paged.snapshot() }).toEqual({ page, ...whole.snapshot() });
      // The same commands; only their order may differ: a node a page readies (after4, skipped with
      // leaf4) is dispatched with that page, not after every leaf as in one definition-order pass.
      const sorted = (list: EngineCommand[]) => list.map((command) => JSON.stringify(command)).sort();
      expect({ page, commands: sorted(commands) }).toEqual({ page, commands: sorted(all.commands) });
    }
    expect(whole.nodes.get('root')!.edgesResolved).toBeUndefined();
    expect(whole.nodes.get('leaf4')!.status).toBe('skipped');
    expect(whole.nodes.get('after4')!.status).toBe('skipped');
  });

  it('a resolve_edges after the last page, or once the run is over, changes nothing; a cancel between pages leaves the rest undispatched', async () => {
    const paged = await started();
    const first = await paged.apply(compiled, [rootDone(2)], { edgePage: 4 });
    expect(paged.nodes.get('root')!.edgesResolved).toBe(4);
    expect(first.filter((c) => c.type === 'enqueue')).toHaveLength(4);
    await settle(paged, compiled, { type: 'cancel', at: 3 }, { edgePage: 4 });
    expect(paged.run.status).toBe('canceled');
    const before = paged.snapshot();
    expect(await paged.apply(compiled, [{ type: 'resolve_edges', nodeId: 'root', at: 2 }], { edgePage: 4 })).toEqual([]);
    expect(paged.snapshot()).toEqual(before);

    const done = await started();
    await drive(done, rootDone(2), { edgePage: 4 });
    const after = done.snapshot();
    expect(await done.apply(compiled, [{ type: 'resolve_edges', nodeId: 'root', at: 2 }], { edgePage: 4 })).toEqual([]);
    expect(await done.apply(compiled, [{ type: 'resolve_edges', nodeId: 'leaf0', at: 2 }], { edgePage: 4 })).toEqual([]);
    expect(done.snapshot()).toEqual(after);
  });

  it('the prefetch of a result reads its first page only', () => {
    expect(nodesTouchedBy(compiled, [rootDone(2)], 3).sort()).toEqual(['join', 'leaf0', 'leaf1', 'leaf2', 'root']);
    expect(nodesTouchedBy(compiled, [{ type: 'resolve_edges', nodeId: 'root', at: 2 }], 3)).toEqual(['root']);
  });

  it('the whole-state transition() refuses edgePage: a RunState has no place for the cursors', async () => {
    const state = createRunState({ id: 'r', tenantId: 't', workflow, inputs: {}, now: 0 });
    await expect(transition(state, { type: 'start', at: 1 }, { edgePage: 3 })).rejects.toThrow('edgePage needs a store that keeps records (applyEvents)');
  });

  it('edgePage must be a whole number of at least 1', async () => {
    const store = await started();
    await expect(store.apply(compiled, [rootDone(2)], { edgePage: 0 })).rejects.toThrow('edgePage must be a whole number ≥ 1, got 0');
  });
});

describe('several wide nodes in one step', () => {
  const code = 'def main(a): return {}';
  // root → w1, w2; w1 → a0..a6 and w2 → b0..b6, every leaf into `join`.
  const leaves = (prefix: string) => Array.from({ length: 7 }, (_, i) => `${prefix}${i}`);
  const workflow = parseWorkflow({
    id: 'two-wide',
    nodes: ['root', 'w1', 'w2', ...leaves('a'), ...leaves('b'), 'join'].map((id) => ({ id, language: 'python', code })),
    edges: [
      { from: 'root', to: 'w1' },
      { from: 'root', to: 'w2' },
      ...leaves('a').map((to) => ({ from: 'w1', to })),
      ...leaves('b').map((to) => ({ from: 'w2', to })),
      ...[...leaves('a'), ...leaves('b')].map((from) => ({ from, to: 'join' })),
    ],
  });
  const compiled = new CompiledWorkflow(workflow);
  const bothWide = async () => {
    const { run, nodes } = createRunRecords(compiled, { id: 'r', tenantId: 't', now: 0 });
    const store = new Records(run, nodes);
    await store.apply(compiled, [{ type: 'start', at: 1 }, finished('root', 'succeeded', 2)], { edgePage: 3 });
    return store;
  };

  it('resolve one page per step between them, and end in the records and commands of all at once', async () => {
    const whole = await bothWide();
    const all = await whole.apply(compiled, [finished('w1', 'succeeded', 3), finished('w2', 'succeeded', 3)]);
    const paged = await bothWide();
    const commands: EngineCommand[] = [];
    const enqueuedPerStep: number[] = [];
    // Every step applies all of the follow-ups the last one wrote, in one batch, as a store's inbox would.
    for (let batch: EngineEvent[] = [finished('w1', 'succeeded', 3), finished('w2', 'succeeded', 3)]; batch.length > 0; ) {
      const step = await paged.apply(compiled, batch, { edgePage: 3 });
      enqueuedPerStep.push(step.filter((c) => c.type === 'enqueue').length);
      commands.push(...step.filter((c) => c.type !== 'resolve_edges'));
      batch = followUps(step);
    }
    // w1's 7 edges in pages of 3, then w2's: never two pages in one step.
    expect(enqueuedPerStep).toEqual([3, 3, 1, 3, 3, 1]);
    expect(paged.snapshot()).toEqual(whole.snapshot());
    expect(sortedCommands(commands)).toEqual(sortedCommands(all));
  });
});

describe('a run with more roots than edgePage', () => {
  const code = 'def main(a): return {}';
  // 7 roots; root5 feeds `after`, which is not a root.
  const workflow = parseWorkflow({
    id: 'flat',
    nodes: [...Array.from({ length: 7 }, (_, i) => ({ id: `root${i}`, language: 'python', code })), { id: 'after', language: 'python', code }],
    edges: [{ from: 'root5', to: 'after' }],
  });
  const compiled = new CompiledWorkflow(workflow);
  const fresh = () => {
    const { run, nodes } = createRunRecords(compiled, { id: 'r', tenantId: 't', now: 0 });
    return new Records(run, nodes);
  };
  const sorted = (list: EngineCommand[]) => list.map((command) => JSON.stringify(command)).sort();

  it('starts them a page per step (start_roots), ending in the records and commands of all at once', async () => {
    const whole = fresh();
    const all = await whole.apply(compiled, [{ type: 'start', at: 1 }]);
    for (const page of [1, 3, 6]) {
      const paged = fresh();
      const commands: EngineCommand[] = [];
      let next: EngineEvent | undefined = { type: 'start', at: 1 };
      let steps = 0;
      while (next) {
        const step = await paged.apply(compiled, [next], { edgePage: page });
        steps += 1;
        expect(step.filter((c) => c.type === 'enqueue').length).toBeLessThanOrEqual(page);
        const follow = step.find((c) => c.type === 'start_roots');
        commands.push(...step.filter((c) => c.type !== 'start_roots'));
        next = follow?.type === 'start_roots' ? { type: 'start_roots', at: follow.at } : undefined;
      }
      expect({ page, steps }).toEqual({ page, steps: Math.ceil(7 / page) });
      expect({ page, ...paged.snapshot() }).toEqual({ page, ...whole.snapshot() });
      expect({ page, commands: sorted(commands) }).toEqual({ page, commands: sorted(all) });
    }
    expect(whole.run.rootsStarted).toBeUndefined();
  });

  it('a start_roots with none left, or after the run ended, changes nothing', async () => {
    const done = fresh();
    await done.apply(compiled, [{ type: 'start', at: 1 }]);
    const before = done.snapshot();
    expect(await done.apply(compiled, [{ type: 'start_roots', at: 2 }], { edgePage: 3 })).toEqual([]);
    expect(done.snapshot()).toEqual(before);

    const canceled = fresh();
    await canceled.apply(compiled, [{ type: 'start', at: 1 }], { edgePage: 3 });
    expect(canceled.run.rootsStarted).toBe(3);
    await settle(canceled, compiled, { type: 'cancel', at: 2 }, { edgePage: 3 });
    expect(canceled.run.status).toBe('canceled');
    const after = canceled.snapshot();
    expect(await canceled.apply(compiled, [{ type: 'start_roots', at: 1 }], { edgePage: 3 })).toEqual([]);
    expect(canceled.snapshot()).toEqual(after);
    expect([...canceled.nodes.values()].filter((node) => node.status === 'queued' || node.status === 'pending')).toEqual([]);
  });

  it('the prefetch of a start reads the first page of roots', () => {
    expect(nodesTouchedBy(compiled, [{ type: 'start', at: 1 }], 3)).toEqual(['root0', 'root1', 'root2']);
  });
});

describe('a run ending with more nodes than edgePage', () => {
  const code = 'def main(a): return {}';
  // 7 roots; root5 feeds `after`; root6's failure is caught by `handler`.
  const workflow = parseWorkflow({
    id: 'ending',
    nodes: [...Array.from({ length: 7 }, (_, i) => ({ id: `root${i}`, language: 'python', code })), { id: 'after', language: 'python', code }, { id: 'handler', language: 'python', code }],
    edges: [
      { from: 'root5', to: 'after' },
      { from: 'root6', to: 'handler', on: 'failure' },
    ],
  });
  const compiled = new CompiledWorkflow(workflow);
  /** Started (all roots queued at once), root0 succeeded, root1 running. */
  const running = async () => {
    const { run, nodes } = createRunRecords(compiled, { id: 'r', tenantId: 't', now: 0 });
    const store = new Records(run, nodes);
    await store.apply(compiled, [{ type: 'start', at: 1 }, finished('root0', 'succeeded', 2), { type: 'node_started', nodeId: 'root1', executionId: 'r.root1.1', at: 3 }]);
    return store;
  };
  const ends: Array<[string, EngineEvent, 'canceled' | 'failed']> = [
    ['a cancel', { type: 'cancel', at: 10, reason: 'enough' }, 'canceled'],
    ['a run timeout', { type: 'run_timeout', at: 10 }, 'failed'],
    ['a node failing with no failure edge', finished('root2', 'failed', 10), 'failed'],
    ['a fail event', { type: 'fail', at: 10, error: { code: 'INTERNAL', message: 'could not apply' } }, 'failed'],
  ];

  it.each(ends)('%s cancels a page of nodes per step (end_run), ending in the records and commands of all at once', async (_name, event, status) => {
    const whole = await running();
    const all = await settle(whole, compiled, event, {});
    expect(all.written).toHaveLength(1);
    expect(whole.run.status).toBe(status);
    for (const page of [1, 2, 4, 9]) {
      const paged = await running();
      const { commands, written } = await settle(paged, compiled, event, { edgePage: page });
      expect({ page, steps: written.length }).toEqual({ page, steps: Math.ceil(compiled.nodeIds.length / page) });
      // Each node written once (root0, finished, not at all), at most a page of them per step
      // (plus the failing node, in the step it fails).
      expect({ page, total: written.reduce((a, b) => a + b, 0) }).toEqual({ page, total: all.written[0] });
      expect({ page, most: Math.max(...written) <= page + 1 }).toEqual({ page, most: true });
      expect({ page, ...paged.snapshot() }).toEqual({ page, ...whole.snapshot() });
      expect({ page, commands: sortedCommands(commands) }).toEqual({ page, commands: sortedCommands(all.commands) });
      // One terminal run event, in the last step.
      expect(commands.filter((c) => c.type === 'emit' && c.event.type === 'run')).toEqual([commands[commands.length - 1]]);
    }
    expect(whole.run.ending).toBeUndefined();
    expect(whole.nodes.get('root0')!.status).toBe('succeeded');
    expect(whole.nodes.get('root1')!.status).toBe('canceled');
  });

  it('while a run ends, every other event finds it ended: a result, a start or another cancel changes nothing, and its timer only asks for the next page again', async () => {
    const paged = await running();
    const first = await paged.apply(compiled, [{ type: 'cancel', at: 10 }], { edgePage: 3 });
    expect(first.filter((c) => c.type === 'cancel_execution').map((c) => c.type === 'cancel_execution' && c.nodeId)).toEqual(['root1', 'root2']);
    expect(paged.run.status).toBe('running');
    expect(paged.run.ending).toMatchObject({ status: 'canceled', next: 3 });
    const during = paged.snapshot();
    for (const event of [finished('root5', 'succeeded', 11), finished('root6', 'failed', 11), { type: 'node_started', nodeId: 'root4', executionId: 'r.root4.1', at: 11 } as EngineEvent, { type: 'cancel', at: 11, reason: 'again' } as EngineEvent, { type: 'start_roots', at: 11 } as EngineEvent]) {
      expect(await paged.apply(compiled, [event], { edgePage: 3 })).toEqual([]);
    }
    // A backstop for an end_run the service lost: the timer asks for the page at the cursor again.
    expect(await paged.apply(compiled, [{ type: 'run_timeout', at: 11 }], { edgePage: 3 })).toEqual([{ type: 'end_run', from: 3, at: 11 }]);
    expect(paged.snapshot()).toEqual(during);
    await settle(paged, compiled, { type: 'end_run', from: 3, at: 10 }, { edgePage: 3 });
    const whole = await running();
    await settle(whole, compiled, { type: 'cancel', at: 10 }, {});
    expect(paged.snapshot()).toEqual(whole.snapshot());
    // root5's result came after the cancel: root5 is canceled, and `after` never ran.
    expect(paged.nodes.get('root5')!.status).toBe('canceled');
    expect(paged.nodes.get('after')!.status).toBe('canceled');
  });

  it('an end_run once the run has ended, or repeated while it ends, changes nothing', async () => {
    const paged = await running();
    await paged.apply(compiled, [{ type: 'cancel', at: 10 }], { edgePage: 4 });
    // The same end_run twice in one batch: one page, one next end_run.
    const twice = await paged.apply(compiled, [{ type: 'end_run', from: 4, at: 10 }, { type: 'end_run', from: 4, at: 10 }], { edgePage: 4 });
    expect(followUps(twice)).toEqual([{ type: 'end_run', from: 8, at: 10 }]);
    expect(paged.run.ending?.next).toBe(8);
    const during = paged.snapshot();
    for (const from of [0, 4]) expect(await paged.apply(compiled, [{ type: 'end_run', from, at: 10 }], { edgePage: 4 })).toEqual([]);
    expect(paged.snapshot()).toEqual(during);
    await settle(paged, compiled, { type: 'end_run', from: 8, at: 10 }, { edgePage: 4 });
    expect(paged.run.status).toBe('canceled');
    const after = paged.snapshot();
    for (const from of [0, 4, 8]) expect(await paged.apply(compiled, [{ type: 'end_run', from, at: 10 }], { edgePage: 4 })).toEqual([]);
    expect(paged.snapshot()).toEqual(after);
  });

  it('a fail while it ends changes no record and asks for the next page again (the service dropped the events after the bad one); a page of the end it could not apply is skipped, its nodes as they were', async () => {
    const paged = await running();
    await paged.apply(compiled, [{ type: 'cancel', at: 10, reason: 'enough' }], { edgePage: 3 });
    // Another event of the batch could not be applied (a result the service cannot read), and the
    // batch's end_run after it was dropped with it: the end is asked for again, nothing else changes.
    const during = paged.snapshot();
    expect(await paged.apply(compiled, [{ type: 'fail', at: 11, error: { code: 'INTERNAL', message: 'a result' } }], { edgePage: 3 })).toEqual([{ type: 'end_run', from: 3, at: 11 }]);
    expect(paged.snapshot()).toEqual(during);
    // The page at the cursor (root3..root5) could not be applied: it is skipped without being read,
    // every execution its nodes may have (3 attempts each: the platform's 2 retries) is canceled
    // blind, and the end goes on.
    const blind = ['root3', 'root4', 'root5'].flatMap((id) => [1, 2, 3].map((attempt) => ({ type: 'cancel_execution', nodeId: id, executionId: `r.${id}.${attempt}` })));
    expect(await paged.apply(compiled, [{ type: 'fail', at: 11, error: { code: 'INTERNAL', message: 'could not apply' }, endPage: 3 }], { edgePage: 3 })).toEqual([...blind, { type: 'end_run', from: 6, at: 11 }]);
    expect(paged.run).toMatchObject({ status: 'running', ending: { next: 6 } });
    // A fail about a page that is no longer the cursor's only asks for the current one again.
    expect(await paged.apply(compiled, [{ type: 'fail', at: 12, error: { code: 'INTERNAL', message: 'stale' }, endPage: 3 }], { edgePage: 3 })).toEqual([{ type: 'end_run', from: 6, at: 12 }]);
    const { commands } = await settle(paged, compiled, { type: 'end_run', from: 6, at: 11 }, { edgePage: 3 });
    expect(commands[commands.length - 1]).toEqual({ type: 'emit', event: { type: 'run', runId: 'r', status: 'canceled', error: { code: 'CANCELED', message: 'enough' }, at: 11 } });
    expect(paged.run).toMatchObject({ status: 'canceled', finishedAt: 11 });
    expect(paged.run.ending).toBeUndefined();
    expect(['root2', 'root3', 'root4', 'root6', 'after'].map((id) => paged.nodes.get(id)!.status)).toEqual(['canceled', 'queued', 'queued', 'canceled', 'canceled']);
  });

  it('a page of the end that could not be applied, when it is the last, finishes the end', async () => {
    const paged = await running();
    await paged.apply(compiled, [{ type: 'cancel', at: 10 }], { edgePage: 5 });
    const commands = await paged.apply(compiled, [{ type: 'fail', at: 11, error: { code: 'INTERNAL', message: 'could not apply' }, endPage: 5 }], { edgePage: 5 });
    expect(commands.filter((c) => c.type === 'cancel_execution')).toHaveLength(4 * 3);
    expect(commands[commands.length - 1]).toEqual({ type: 'emit', event: { type: 'run', runId: 'r', status: 'canceled', error: { code: 'CANCELED', message: 'run canceled' }, at: 11 } });
    expect(paged.run.ending).toBeUndefined();
  });

  it('a fail whose own end cannot read its first page (endPage 0) starts the end past that page, reading no record of it', async () => {
    for (const edgePage of [4, undefined]) {
      const paged = await running();
      const before = paged.reads;
      const commands = await paged.apply(compiled, [{ type: 'fail', at: 11, error: { code: 'INTERNAL', message: 'unreadable' }, endPage: 0 }], edgePage ? { edgePage } : {});
      const page = compiled.nodeIds.slice(0, edgePage ?? compiled.nodeIds.length);
      expect({ edgePage, reads: paged.reads - before }).toEqual({ edgePage, reads: 0 });
      expect(commands.filter((c) => c.type === 'cancel_execution').map((c) => c.type === 'cancel_execution' && c.executionId)).toEqual(page.flatMap((id) => [1, 2, 3].map((attempt) => `r.${id}.${attempt}`)));
      if (edgePage) {
        expect(paged.run).toMatchObject({ status: 'running', ending: { status: 'failed', next: 4, error: { code: 'INTERNAL' } } });
        expect(followUps(commands)).toEqual([{ type: 'end_run', from: 4, at: 11 }]);
      } else {
        expect(paged.run).toMatchObject({ status: 'failed', error: { code: 'INTERNAL', message: 'unreadable' }, finishedAt: 11 });
        expect(commands[commands.length - 1]).toMatchObject({ type: 'emit', event: { type: 'run', status: 'failed' } });
      }
      // Their records are as they were: the page was not read.
      expect(paged.nodes.get('root1')!.status).toBe('running');
    }
  });

  it('the prefetch of an end_run reads its page', () => {
    expect(nodesTouchedBy(compiled, [{ type: 'end_run', from: 3, at: 1 }], 3)).toEqual(['root3', 'root4', 'root5']);
  });
});

describe('a failure that ends the run mid-step, paged', () => {
  const code = 'def main(a): return {}';
  const node = (id: string, extra: object = {}) => ({ id, language: 'python', code, ...extra });
  const runStatuses = (commands: EngineCommand[]) => commands.flatMap((c) => (c.type === 'emit' && c.event.type === 'run' ? [c.event.status] : []));
  // The engine goes on after the failure that ends the run (routing, dispatch, completion): with
  // the end paged, the run still reads `running`, and none of that may happen.
  const cases: Array<[string, object, EngineEvent[], EngineEvent]> = [
    ['the last open node fails (nothing left to cancel: no run completion mid-end)', { id: 'last', nodes: [node('a'), node('b'), node('c')] }, [{ type: 'start', at: 1 }, finished('b', 'succeeded', 2), finished('c', 'succeeded', 2)], finished('a', 'failed', 3)],
    ['a failure whose success successor would be skipped', { id: 'skip', nodes: [node('a'), node('b'), node('c')], edges: [{ from: 'a', to: 'c' }] }, [{ type: 'start', at: 1 }], finished('a', 'failed', 3)],
    ['a failure that resolves the last edge of a node another edge fired', { id: 'fire', nodes: [node('a'), node('x'), node('y'), node('d')], edges: [{ from: 'x', to: 'd' }, { from: 'a', to: 'd' }] }, [{ type: 'start', at: 1 }, finished('x', 'succeeded', 2)], finished('a', 'failed', 3)],
    ['a root whose input binding fails at the start', { id: 'bind', nodes: [node('r0', { inputs: { v: '$error("no")' } }), node('r1'), node('r2')] }, [], { type: 'start', at: 1 }],
  ];

  it.each(cases)('%s: the records, commands and one terminal event of all at once', async (_name, definition, setup, event) => {
    const compiled = new CompiledWorkflow(parseWorkflow(definition));
    const fresh = async () => {
      const { run, nodes } = createRunRecords(compiled, { id: 'r', tenantId: 't', now: 0 });
      const store = new Records(run, nodes);
      if (setup.length > 0) await store.apply(compiled, setup);
      return store;
    };
    const whole = await fresh();
    const all = await settle(whole, compiled, event, {});
    expect(whole.run.status).toBe('failed');
    for (const page of [1, 2]) {
      const paged = await fresh();
      const { commands } = await settle(paged, compiled, event, { edgePage: page });
      expect({ page, statuses: runStatuses(commands) }).toEqual({ page, statuses: runStatuses(all.commands) });
      expect({ page, commands: sortedCommands(commands) }).toEqual({ page, commands: sortedCommands(all.commands) });
      expect({ page, ...paged.snapshot() }).toEqual({ page, ...whole.snapshot() });
    }
  });
});

describe('records an expression reads', () => {
  it('are copies: JSONata writes onto values it is given, and the source\'s records (frozen here) never change', async () => {
    const code = 'def main(a): return {}';
    const workflow = parseWorkflow({
      id: 'w',
      nodes: [
        { id: 'a', language: 'python', code },
        { id: 'b', language: 'python', code, inputs: { list: 'nodes.a.output.list[]', n: '$count(inputs.items[])' } },
        { id: 'c', language: 'python', code },
      ],
      edges: [{ from: 'a', to: 'b' }, { from: 'a', to: 'c', when: 'nodes.a.output.list[] ~> $count() = 1' }],
    });
    const compiled = new CompiledWorkflow(workflow);
    const { run, nodes } = createRunRecords(compiled, { id: 'r', tenantId: 't', now: 0 });
    const store = new Records(run, nodes, { items: [1] });
    await store.apply(compiled, [{ type: 'start', at: 1 }]);
    const finished: ExecResult = { executionId: 'r.a.1', tenantId: 't', runId: 'r', nodeId: 'a', attempt: 1, status: 'succeeded', output: { list: [1] }, logs: { stdout: '', stderr: '', truncated: false }, warnings: [], timings: { enqueuedAt: 0, startedAt: 0, finishedAt: 0, queueWaitMs: 0, executionMs: 0 }, workerId: 'w' };
    const commands = await store.apply(compiled, [{ type: 'node_finished', result: finished, at: 2 }]);
    // `x[]` marks the array it was given (keepSingleton): on a frozen record that would throw and fail the binding.
    const jobs = commands.flatMap((command) => (command.type === 'enqueue' ? [[command.job.nodeId, command.job.args]] : []));
    expect(jobs).toEqual([['b', { list: [1], n: 1 }], ['c', { inputs: { items: [1] }, nodes: { a: { output: { list: [1] } } } }]]);
    expect(Object.keys(store.nodes.get('a')!.output!.list as object)).toEqual(['0']);
  });
});

describe('nodesTouchedBy', () => {
  const compiled = (edges: Array<[string, string]>, ids: string[]) => {
    const workflow = parseWorkflow({ id: 'w', nodes: ids.map((id) => ({ id, language: 'python', code: 'def main(args): return {}' })), edges: edges.map(([from, to]) => ({ from, to })) });
    return new CompiledWorkflow(workflow, 'h');
  };
  const finished = (nodeId: string): EngineEvent => ({ type: 'node_finished', result: { runId: 'r', nodeId, executionId: `r.${nodeId}.1` } as ExecResult, at: 1 });

  it('a result touches its node, its successors and theirs (what dispatching or skipping a successor reads)', () => {
    const chain = compiled([['a', 'b'], ['b', 'c'], ['c', 'd']], ['a', 'b', 'c', 'd']);
    expect(nodesTouchedBy(chain, [finished('a')]).sort()).toEqual(['a', 'b', 'c']);
  });

  it('each node once, however many results of a batch lead to it', () => {
    const fanIn = compiled([['a', 'j'], ['b', 'j'], ['j', 'k']], ['a', 'b', 'j', 'k']);
    expect(nodesTouchedBy(fanIn, [finished('a'), finished('b')]).sort()).toEqual(['a', 'b', 'j', 'k']);
  });

  it('a start touches the roots; a started node itself; an unknown node nothing', () => {
    const chain = compiled([['a', 'b']], ['a', 'b']);
    expect(nodesTouchedBy(chain, [{ type: 'start', at: 1 }])).toEqual(['a']);
    expect(nodesTouchedBy(chain, [{ type: 'node_started', nodeId: 'b', executionId: 'r.b.1', at: 1 }])).toEqual(['b']);
    expect(nodesTouchedBy(chain, [finished('ghost')])).toEqual([]);
  });

  it('given the run, what it ignores reads nothing: an ending run only its end\'s page, an ended one nothing', () => {
    const chain = compiled([['a', 'b'], ['b', 'c']], ['a', 'b', 'c']);
    const batch: EngineEvent[] = [finished('a'), { type: 'node_started', nodeId: 'b', executionId: 'r.b.1', at: 1 }, { type: 'end_run', from: 1, at: 1 }];
    const ending = { status: 'failed' as const, error: { code: 'INTERNAL' as const, message: 'x' }, nodeError: { code: 'CANCELED' as const, message: 'x' }, next: 1 };
    expect(nodesTouchedBy(chain, batch, 2, { status: 'running' }).sort()).toEqual(['a', 'b', 'c']);
    expect(nodesTouchedBy(chain, batch, 2, { status: 'running', ending })).toEqual(['b', 'c']);
    expect(nodesTouchedBy(chain, [finished('a')], 2, { status: 'running', ending })).toEqual([]);
    expect(nodesTouchedBy(chain, batch, 2, { status: 'canceled' })).toEqual([]);
  });
});

describe('nodeReadsOf', () => {
  it.each([
    ['nodes.load.output.rows', ['load']],
    ['$count(nodes.`my-node`.output.rows) > 0', ['my-node']],
    ['{"x": nodes.a.output, "y": inputs.z[v = nodes.b.status]}', ['a', 'b']],
    ['inputs.limit', []],
  ])('%s reads %j', (expression, ids) => {
    expect(nodeReadsOf(expression)).toEqual(new Set(ids));
  });

  it.each(['nodes', 'nodes.*.output', '$$.nodes.a', '$.nodes.a', '$lookup(nodes, "a")', '($n := nodes; $n.a)', 'nodes[0]', '$eval("nodes.a")', 'nodes.(a)'])('%s reads every node', (expression) => {
    expect(nodeReadsOf(expression)).toBe('all');
  });
});
