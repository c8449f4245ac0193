import type { JsonObject, NodeError, NodePhase } from '@podflow/protocol';
import { DEFAULT_EXPRESSION_LIMITS, type ExpressionLimits } from './expression-budget';
import type { CompiledWorkflow } from './compiled-workflow';
import type { CodeNode, EdgeResolution, EngineCommand, NodeRecord, RunRecord, RunSource } from './types';
import { ReadyQueue } from './ready-queue';

/**
 * One transition in progress over a working set: the run record and the node and edge records
 * loaded so far (owned copies), which of them changed, the commands produced, and the event
 * time, the only clock the engine knows. Records are loaded through the source on first use
 * (`load`), so a transition costs what its event touches, not the size of the run.
 */
export interface Step {
  compiled: CompiledWorkflow;
  source: RunSource;
  run: RunRecord;
  runChanged: boolean;
  /** Loaded records: the source's own until written, then this step's copy (`nodeState`). */
  nodes: Map<string, NodeRecord>;
  /** Nodes whose record in `nodes` is this step's copy. */
  ownedNodes: Set<string>;
  dirtyNodes: Set<string>;
  edges: Map<number, EdgeResolution>;
  dirtyEdges: Set<number>;
  inputs?: JsonObject;
  commands: EngineCommand[];
  at: number;
  expressionLimits: ExpressionLimits;
  /** TransitionOptions.edgePage: most outgoing edges of a succeeded node resolved, roots started or nodes of an ending run canceled in this step. */
  edgePage?: number;
  /** A wide node (more outgoing edges than `edgePage`) resolved a page in this step: any other waits for the next. */
  widePageTaken: boolean;
  ready: ReadyQueue;
}

export function newStep(compiled: CompiledWorkflow, run: RunRecord, source: RunSource, expressionLimits: ExpressionLimits = DEFAULT_EXPRESSION_LIMITS, edgePage?: number): Step {
  if (edgePage !== undefined && !(Number.isInteger(edgePage) && edgePage >= 1)) throw new RangeError(`edgePage must be a whole number ≥ 1, got ${edgePage}`);
  return {
    compiled,
    source,
    run: structuredClone(run),
    runChanged: false,
    nodes: new Map(),
    ownedNodes: new Set(),
    dirtyNodes: new Set(),
    edges: new Map(),
    dirtyEdges: new Set(),
    commands: [],
    at: 0,
    expressionLimits,
    ...(edgePage !== undefined ? { edgePage } : {}),
    widePageTaken: false,
    ready: new ReadyQueue((id) => compiled.position.get(id) ?? 0),
  };
}

/**
 * The record of a node nothing has touched yet: `pending`, waiting for all of its incoming edges.
 * A run starts with every node but its roots (and kept nodes) in this state, so a store writes
 * these records only once they change, and a source without one gives this.
 */
export function pendingRecord(compiled: CompiledWorkflow, nodeId: string): NodeRecord {
  return { status: 'pending', attempts: 0, timings: {}, waiting: compiled.incoming(nodeId).length, fired: 0 };
}

/**
 * Loads the node records not in the working set yet (one source call for all of them). They are
 * not copied: most are only read (a node's `args` read every ancestor), and `nodeState` copies a
 * record before its first change, so the source's records are never changed. A node of the
 * workflow the source has no record of is untouched: its `pendingRecord`.
 */
export async function loadNodes(step: Step, ids: Iterable<string>): Promise<void> {
  const missing = [...new Set(ids)].filter((id) => !step.nodes.has(id));
  if (missing.length === 0) return;
  const loaded = await step.source.nodes(missing);
  for (const id of missing) {
    const record = loaded.get(id);
    if (record) step.nodes.set(id, record);
    else if (step.compiled.nodesById.has(id)) step.nodes.set(id, pendingRecord(step.compiled, id));
    else throw new Error(`run ${step.run.id} has no node "${id}"`);
  }
}

export async function loadEdges(step: Step, indexes: Iterable<number>): Promise<void> {
  const missing = [...new Set(indexes)].filter((index) => !step.edges.has(index));
  if (missing.length === 0) return;
  const loaded = await step.source.edges(missing);
  for (const index of missing) step.edges.set(index, loaded.get(index) ?? 'pending');
}

export async function runInputs(step: Step): Promise<JsonObject> {
  step.inputs ??= await step.source.inputs();
  return step.inputs;
}

/** A loaded node, marked changed: callers take it to modify it (this step's copy). Not loaded is a bug, so it throws. */
export function nodeState(step: Step, nodeId: string): NodeRecord {
  let node = step.nodes.get(nodeId);
  if (!node) throw new Error(`node "${nodeId}" of run ${step.run.id} was used before it was loaded`);
  if (!step.ownedNodes.has(nodeId)) {
    node = structuredClone(node);
    step.nodes.set(nodeId, node);
    step.ownedNodes.add(nodeId);
  }
  step.dirtyNodes.add(nodeId);
  return node;
}

/** A loaded node, read only. */
export function peekNode(step: Step, nodeId: string): NodeRecord {
  const node = step.nodes.get(nodeId);
  if (!node) throw new Error(`node "${nodeId}" of run ${step.run.id} was used before it was loaded`);
  return node;
}

export function edgeState(step: Step, index: number): EdgeResolution {
  const edge = step.edges.get(index);
  if (edge === undefined) throw new Error(`edge ${index} of run ${step.run.id} was used before it was loaded`);
  return edge;
}

export function nodeDefinition(step: Step, nodeId: string): CodeNode {
  return step.compiled.node(nodeId);
}

export function runRecord(step: Step): RunRecord {
  step.runChanged = true;
  return step.run;
}

/**
 * Resolves one edge and counts it at its target; a pending target whose last edge this was
 * becomes ready (ready-queue.ts keeps the definition-order passes). The target must be loaded.
 */
export function resolveEdge(step: Step, index: number, fired: boolean): void {
  step.edges.set(index, fired ? 'fired' : 'not_fired');
  step.dirtyEdges.add(index);
  const targetId = step.compiled.workflow.edges[index].to;
  const target = nodeState(step, targetId);
  target.waiting -= 1;
  if (fired) target.fired += 1;
  if (target.waiting === 0 && target.status === 'pending') step.ready.add(targetId);
}

/** Sets a node's status, keeping the run's count of open (pending/queued/running) nodes. */
export function setNodeStatus(step: Step, nodeId: string, status: NodePhase): NodeRecord {
  const node = nodeState(step, nodeId);
  const wasOpen = node.status === 'pending' || isActive(node.status);
  const isOpen = status === 'pending' || isActive(status);
  if (wasOpen && !isOpen) runRecord(step).open -= 1;
  if (!wasOpen && isOpen) runRecord(step).open += 1;
  node.status = status;
  return node;
}

/** Appends a node transition to the run's event stream (after the status is set). */
export function emitNode(step: Step, nodeId: string, error?: NodeError): void {
  const node = peekNode(step, nodeId);
  step.commands.push({
    type: 'emit',
    event: { type: 'node', runId: step.run.id, nodeId, status: node.status, attempt: node.attempts, ...(error ? { error } : {}), at: step.at },
  });
}

/** Appends a run transition to the run's event stream (after the status is set). */
export function emitRun(step: Step): void {
  const { run } = step;
  step.commands.push({
    type: 'emit',
    event: { type: 'run', runId: run.id, status: run.status, ...(run.error ? { error: run.error } : {}), at: step.at },
  });
}

/**
 * The run goes on: running, and not ending (a paged end, `RunRecord.ending`, has ended it for
 * everything but its own pages). Nothing is dispatched, skipped, routed or completed otherwise.
 */
export function isLiveRun(run: Pick<RunRecord, 'status' | 'ending'>): boolean {
  return run.status === 'running' && run.ending === undefined;
}

/** `isLiveRun` of the step's run. */
export function isLive(step: Step): boolean {
  return isLiveRun(step.run);
}

/** Queued or running: the node has an execution that may still report, and that cancel must kill. */
export function isActive(status: NodePhase): boolean {
  return status === 'queued' || status === 'running';
}
