import { recordOf } from '@podflow/protocol';
import type { CompiledWorkflow } from './compiled-workflow';
import type { EdgeResolution, NodeRecord, NodeState, RunChanges, RunRecord, RunSource, RunState } from './types';

/** Converts between a whole `RunState` and the records the engine works on (for the state API and tests). */

export function runRecordOf(state: RunState): RunRecord {
  let open = 0;
  for (const node of Object.values(state.nodes)) if (['pending', 'queued', 'running'].includes(node.status)) open += 1;
  return {
    id: state.id,
    tenantId: state.tenantId,
    workflowId: state.workflow.id,
    workflowHash: '',
    ...(state.workflowVersion !== undefined ? { workflowVersion: state.workflowVersion } : {}),
    status: state.status,
    ...(state.outputs !== undefined ? { outputs: state.outputs } : {}),
    ...(state.outputsRef !== undefined ? { outputsRef: state.outputsRef } : {}),
    ...(state.error !== undefined ? { error: state.error } : {}),
    createdAt: state.createdAt,
    ...(state.startedAt !== undefined ? { startedAt: state.startedAt } : {}),
    ...(state.finishedAt !== undefined ? { finishedAt: state.finishedAt } : {}),
    ...(state.deadlineAt !== undefined ? { deadlineAt: state.deadlineAt } : {}),
    open,
  };
}

/** Node records with their counters derived from the edge resolutions. */
export function nodeRecordsOf(state: RunState, compiled: CompiledWorkflow): Map<string, NodeRecord> {
  const records = new Map<string, NodeRecord>();
  for (const [id, node] of Object.entries(state.nodes)) {
    const incoming = compiled.incoming(id);
    records.set(id, {
      ...node,
      waiting: incoming.filter((index) => state.edges[index] === 'pending').length,
      fired: incoming.filter((index) => state.edges[index] === 'fired').length,
    });
  }
  return records;
}

/** A source over records held in memory. */
export function memorySource(state: Pick<RunState, 'inputs' | 'edges'>, nodes: ReadonlyMap<string, NodeRecord>): RunSource {
  return {
    nodes: async (ids) => new Map(ids.flatMap((id) => (nodes.has(id) ? [[id, nodes.get(id)!] as const] : []))),
    edges: async (indexes) => new Map(indexes.map((index) => [index, state.edges[index] ?? 'pending'] as const)),
    inputs: async () => state.inputs,
  };
}

/** The node state without the engine's counters (and the cursor of a node whose edges go a page at a time). */
export function nodeStateOf(record: NodeRecord): NodeState {
  const { waiting: _waiting, fired: _fired, edgesResolved: _edgesResolved, ...node } = record;
  return node;
}

/** A new state: `state` with the changes applied (a copy; `state` is not mutated). */
export function mergeChanges(state: RunState, changes: RunChanges): RunState {
  const next = structuredClone(state);
  const { run } = changes;
  next.status = run.status;
  for (const key of ['outputs', 'outputsRef', 'error', 'startedAt', 'finishedAt', 'deadlineAt'] as const) {
    if (run[key] === undefined) delete next[key];
    else (next as unknown as Record<string, unknown>)[key] = structuredClone(run[key]);
  }
  const nodes = recordOf(Object.entries(next.nodes));
  for (const [id, record] of changes.nodes) nodes[id] = nodeStateOf(structuredClone(record));
  next.nodes = nodes;
  const edges: EdgeResolution[] = [...next.edges];
  for (const [index, resolution] of changes.edges) edges[index] = resolution;
  next.edges = edges;
  return next;
}
