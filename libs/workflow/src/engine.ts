import { emptyRecord, isTerminalRunPhase, type JsonObject } from '@podflow/protocol';
import { CompiledWorkflow } from './compiled-workflow';
import { emitNode, emitRun, isLive, loadNodes, newStep, nodeState, peekNode, pendingRecord, runRecord, type Step } from './engine-context';
import type { ExpressionLimits } from './expression-budget';
import { advance } from './engine-dispatch';
import { onNodeFinished } from './engine-results';
import { resolveMoreEdges, resolveOutgoing } from './engine-routing';
import { keptRecord, type KeptNode } from './resume';
import type { TestRunInfo } from './test-run';
import { cancelRun, endRunPage, failUnapplicable, timeoutRun } from './engine-terminate';
import { memorySource, mergeChanges, nodeRecordsOf, runRecordOf } from './run-records';
import type { EdgeResolution, EngineEvent, NodeRecord, NodeState, RunChanges, RunRecord, RunSource, RunState, TransitionResult, Workflow } from './types';

/** Everything needed to create a run; `now` becomes `createdAt` (the engine has no clock of its own). */
export interface CreateRunParams {
  id: string;
  tenantId: string;
  workflow: Workflow;
  workflowVersion?: number;
  inputs: JsonObject;
  now: number;
}

/** What the caller tunes about a transition; the defaults suit tests and embedded use. */
export interface TransitionOptions {
  /** Bounds of every expression the transition evaluates (input bindings, `when`, workflow `output`). */
  expressionLimits?: ExpressionLimits;
  /**
   * Most outgoing edges of a succeeded node resolved in one step. A node with more resolves them a
   * page per step, each page a `resolve_edges` command the caller must apply as an event
   * (a store writes it to the run's inbox with the changes): the step that readies a 10,000-node
   * fan-out then writes ~`edgePage` node records, not 10,000, so no single atomic write of one run
   * holds up everyone else's. The same bound pages the roots of a run that starts with more, and
   * the nodes a run's end cancels (`start_roots`, `end_run`). Undefined (the default): all at once.
   */
  edgePage?: number;
}

/**
 * Nodes a new run starts with as succeeded (resume.ts `KeptNode`), and what the run is: a resumed
 * run (`resumedFrom`: the run it resumes), a test run of one node (`test`) or an agent tool call
 * (`tool`: the tool's name).
 */
export interface KeptParams {
  kept: ReadonlyMap<string, KeptNode>;
  resumedFrom?: string;
  test?: TestRunInfo;
  tool?: string;
}

/**
 * A new run as records: `queued`, every node `pending` waiting for all of its incoming edges
 * (`pendingRecord`); kept nodes `succeeded` as they were (their outgoing edges are resolved at
 * `start`). A store needs to write only the records that differ from `pendingRecord`: a source
 * that has no record of a node gives the engine its pending record (RunSource).
 */
export function createRunRecords(compiled: CompiledWorkflow, params: Omit<CreateRunParams, 'workflow' | 'inputs'> & { keep?: KeptParams }): { run: RunRecord; nodes: Map<string, NodeRecord> } {
  const nodes = new Map<string, NodeRecord>();
  const { keep } = params;
  for (const { id } of compiled.workflow.nodes) {
    const kept = keep?.kept.get(id);
    nodes.set(id, kept ? keptRecord(kept, compiled.incoming(id).length) : pendingRecord(compiled, id));
  }
  const run: RunRecord = {
    id: params.id,
    tenantId: params.tenantId,
    workflowId: compiled.workflow.id,
    workflowHash: compiled.hash,
    ...(params.workflowVersion !== undefined ? { workflowVersion: params.workflowVersion } : {}),
    ...(keep && keep.kept.size > 0 ? { kept: keep.kept.size } : {}),
    ...(keep?.resumedFrom !== undefined ? { resumedFrom: keep.resumedFrom } : {}),
    ...(keep?.test ? { test: keep.test } : {}),
    ...(keep?.tool !== undefined ? { tool: keep.tool } : {}),
    status: 'queued',
    createdAt: params.now,
    open: [...nodes.values()].filter((node) => node.status === 'pending').length,
  };
  return { run, nodes };
}

/**
 * Applies events to a run, in order, and returns what changed plus the commands the caller must
 * carry out. Pure apart from reading records through `source`: no clock (time comes from each
 * `event.at`), inputs never mutated. Cost: the records the events touch (the node, its
 * successors, what `args` and expressions read), never the size of the run, except at the end of
 * a run (cancel, failure, timeout read every node once: a page per step with `edgePage`).
 *
 * Idempotent by construction: an event that no longer applies (a duplicate or stale result, a
 * second `start`, a late timer) changes nothing and emits nothing. Applying a batch gives the
 * same records and commands as applying its events one at a time, each to the records the
 * previous one left. So at-least-once delivery is safe as long as the caller writes the changes
 * atomically with recording the batch as applied and carries out the commands at least once.
 */
export async function applyEvents(compiled: CompiledWorkflow, run: RunRecord, source: RunSource, events: readonly EngineEvent[], options: TransitionOptions = {}): Promise<RunChanges> {
  const step = newStep(compiled, run, source, options.expressionLimits, options.edgePage);
  for (const event of events) {
    step.at = event.at;
    // Cloned, so the changes never alias the caller's event payload.
    await applyOne(step, structuredClone(event));
  }
  const nodes = new Map<string, NodeRecord>();
  for (const id of step.dirtyNodes) nodes.set(id, step.nodes.get(id)!);
  const edges = new Map<number, EdgeResolution>();
  for (const index of step.dirtyEdges) edges.set(index, step.edges.get(index)!);
  return { run: step.run, runChanged: step.runChanged, nodes, edges, commands: step.commands };
}

async function applyOne(step: Step, event: EngineEvent): Promise<void> {
  // An ending run (paged: RunRecord.ending) has ended for every other event: they find it as they
  // would find it after an end in one step, where each of them is a no-op. A `fail` (an event the
  // service could not apply) or the run's timer asks for the end's next page again.
  if (step.run.ending && event.type !== 'end_run' && event.type !== 'fail' && event.type !== 'run_timeout') return;
  switch (event.type) {
    case 'start':
      await start(step);
      return;
    case 'node_started':
      await nodeStarted(step, event.nodeId, event.executionId);
      return;
    case 'node_finished':
      await onNodeFinished(step, event.result);
      return;
    case 'cancel':
      await cancelRun(step, event.reason);
      return;
    case 'run_timeout':
      await timeoutRun(step);
      return;
    case 'resolve_edges':
      if ((await resolveMoreEdges(step, event.nodeId)) !== undefined) await advance(step);
      return;
    case 'start_roots':
      // Nothing left (a late or repeated one) once the count is gone.
      if (isLive(step) && step.run.rootsStarted !== undefined) await startRoots(step, step.run.rootsStarted);
      return;
    case 'end_run':
      await endRunPage(step, event.from);
      return;
    case 'fail':
      await failUnapplicable(step, event.error, event.endPage);
      return;
    default: {
      const unknown: never = event;
      throw new Error(`unknown engine event ${JSON.stringify(unknown)}`);
    }
  }
}

/**
 * The node ids a batch of events will most likely read, for a store to fetch in one round trip
 * before `applyEvents` (which loads anything else it needs on demand): a result's node, its
 * successors (their edges resolve) and theirs (a successor that becomes ready is dispatched or
 * skipped, which reads its own successors), at most `edgePage` successors of one node; the page
 * an `end_run` cancels. Bounded by the run's nodes. Given the `run` the batch starts from, what
 * it ignores reads nothing: an ending run applies only its end's pages (`applyOne`), an ended one
 * nothing.
 */
export function nodesTouchedBy(compiled: CompiledWorkflow, events: readonly EngineEvent[], edgePage?: number, run?: Pick<RunRecord, 'status' | 'ending'>): string[] {
  if (run?.ending) events = events.filter((event) => event.type === 'end_run');
  else if (run && isTerminalRunPhase(run.status)) return [];
  const ids = new Set<string>();
  const expanded = new Set<string>();
  // A wide node's first page only (TransitionOptions.edgePage): the rest is for later steps.
  const successors = (id: string) => compiled.outgoing(id).slice(0, edgePage).map((index) => compiled.workflow.edges[index].to);
  for (const event of events) {
    if (event.type === 'node_started' || event.type === 'resolve_edges') ids.add(event.nodeId);
    else if (event.type === 'node_finished' && compiled.nodesById.has(event.result.nodeId)) {
      ids.add(event.result.nodeId);
      for (const next of successors(event.result.nodeId)) {
        ids.add(next);
        if (expanded.has(next)) continue;
        expanded.add(next);
        for (const after of successors(next)) ids.add(after);
      }
    } else if (event.type === 'start') for (const id of compiled.roots.slice(0, edgePage)) ids.add(id);
    else if (event.type === 'end_run' && edgePage !== undefined) for (const id of compiled.nodeIds.slice(event.from, event.from + edgePage)) ids.add(id);
  }
  return [...ids];
}

async function start(step: Step): Promise<void> {
  if (step.run.status !== 'queued') return;
  const run = runRecord(step);
  run.status = 'running';
  run.startedAt = step.at;
  run.deadlineAt = step.at + step.compiled.workflow.timeoutMs;
  step.commands.push({ type: 'schedule_run_timeout', at: run.deadlineAt });
  emitRun(step);
  if ((run.kept ?? 0) > 0 && !(await resolveKept(step))) return;
  await startRoots(step, 0);
}

/**
 * Readies the run's roots from position `from` on, at most `step.edgePage` of them (definition
 * order): with more left, `rootsStarted` counts the ones started and a `start_roots` command asks
 * for the next page.
 */
async function startRoots(step: Step, from: number): Promise<void> {
  const { roots } = step.compiled;
  const to = Math.min(roots.length, from + (step.edgePage ?? roots.length));
  if (to < roots.length) {
    runRecord(step).rootsStarted = to;
    step.commands.push({ type: 'start_roots', at: step.at });
  } else if (step.run.rootsStarted !== undefined) delete runRecord(step).rootsStarted;
  for (const id of roots.slice(from, to)) step.ready.add(id);
  await advance(step);
}

/**
 * Kept nodes count as having just succeeded: their events are emitted and their
 * outgoing edges resolved (with `when` evaluated on the kept outputs), which makes the nodes
 * after them ready. Reads every node once, at the start of a run with kept nodes only. False when a
 * `when` failed to evaluate (the run has failed).
 */
async function resolveKept(step: Step): Promise<boolean> {
  const ids = step.compiled.nodeIds;
  await loadNodes(step, ids);
  for (const id of ids) {
    if (peekNode(step, id).keptFrom === undefined) continue;
    // Written with the run's first changes, so the store keeps a large kept output by reference like any other.
    nodeState(step, id);
    emitNode(step, id);
    const toKept = (index: number) => peekNode(step, step.compiled.workflow.edges[index].to).keptFrom !== undefined;
    if ((await resolveOutgoing(step, id, 'succeeded', toKept)) === undefined) return false;
  }
  return true;
}

/** `started` costs one node record: a guarded move from queued to running, and its event. */
async function nodeStarted(step: Step, nodeId: string, executionId: string): Promise<void> {
  if (!isLive(step) || !step.compiled.nodesById.has(nodeId)) return;
  await loadNodes(step, [nodeId]);
  const current = peekNode(step, nodeId);
  if (current.status !== 'queued' || current.executionId !== executionId) return;
  const node = nodeState(step, nodeId);
  node.status = 'running';
  node.timings.startedAt = step.at;
  emitNode(step, nodeId);
}

// ---- The whole-state API, kept for fixtures, tests and embedded use -------------------------

/**
 * A new run: `queued`, every node `pending` with no attempts, every edge unresolved. `nodes` has
 * no prototype, so a node id such as `__proto__` or `constructor` is an ordinary key; it stays an
 * own key through JSON and `structuredClone`, and the engine reads it with `ownValue`.
 */
export function createRunState(params: CreateRunParams): RunState {
  const nodes = emptyRecord<NodeState>();
  for (const node of params.workflow.nodes) nodes[node.id] = { status: 'pending', attempts: 0, timings: {} };
  return {
    id: params.id,
    tenantId: params.tenantId,
    workflow: structuredClone(params.workflow),
    ...(params.workflowVersion !== undefined ? { workflowVersion: params.workflowVersion } : {}),
    inputs: structuredClone(params.inputs),
    status: 'queued',
    nodes,
    edges: params.workflow.edges.map(() => 'pending'),
    createdAt: params.now,
  };
}

/**
 * Applies one event to a whole run state (the records API behind an adapter): returns the new
 * state plus the commands, in order. The input state is never mutated.
 */
export async function transition(state: RunState, event: EngineEvent, options: TransitionOptions = {}): Promise<TransitionResult> {
  // The whole state has no place for the cursors pages keep (a node's edgesResolved, a run's rootsStarted and ending).
  if (options.edgePage !== undefined) throw new RangeError('edgePage needs a store that keeps records (applyEvents); transition() resolves every edge at once');
  const compiled = new CompiledWorkflow(state.workflow);
  const changes = await applyEvents(compiled, runRecordOf(state), memorySource(state, nodeRecordsOf(state, compiled)), [event], options);
  return { state: mergeChanges(state, changes), commands: changes.commands };
}

