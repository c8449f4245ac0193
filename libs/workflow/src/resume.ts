import type { CompiledWorkflow } from './compiled-workflow';
import type { NodeRecord, NodeState } from './types';

/**
 * A node a new run starts with as succeeded instead of running it: a resumed run's node kept from
 * the run it resumes, or a test run's upstream node (from an earlier run, or a sample value).
 * `keptFrom`: the run its result comes from, or `sample` for a value the caller gave.
 */
export type KeptNode = Pick<NodeState, 'attempts' | 'executionId' | 'output' | 'outputRef' | 'files' | 'warnings' | 'timings'> & { keptFrom: string };

/**
 * The nodes a resumed run keeps from the run it resumes (`POST /v1/runs/:id/resume`), in
 * definition order. The rule: a node keeps its output and files when
 * - it succeeded in the earlier run,
 * - the new definition has it unchanged (same code, language, bindings, dependencies, limits:
 *   every field of the node) with the same incoming edges (source, `on`, `when`), and
 * - every node it depends on is kept too.
 * Everything else runs again: failed, canceled, skipped and never-run nodes, a changed node and
 * everything downstream of one (its inputs may differ now). The last condition also keeps a
 * consistent picture: a node that only ran because an upstream failed (an error branch) runs
 * again, or is skipped, once that upstream has run again.
 */
export function keptNodes(before: CompiledWorkflow, records: ReadonlyMap<string, NodeState>, after: CompiledWorkflow, keptFrom: string): Map<string, KeptNode> {
  const kept = new Map<string, KeptNode>();
  const keeps = new Set<string>();
  // Upstream before downstream (Kahn's order), without recursion: a chain of 10,000 nodes is fine.
  for (const id of topologicalOrder(after)) {
    const record = records.get(id);
    const node = after.nodesById.get(id);
    const yes =
      record?.status === 'succeeded' &&
      node !== undefined &&
      before.nodesById.has(id) &&
      sameJson(before.node(id), node) &&
      sameJson(incomingOf(before, id), incomingOf(after, id)) &&
      after.incoming(id).every((index) => keeps.has(after.workflow.edges[index].from));
    if (yes) keeps.add(id);
  }
  for (const id of after.nodeIds) {
    if (!keeps.has(id)) continue;
    const { attempts, executionId, output, outputRef, files, warnings, timings } = records.get(id)!;
    kept.set(id, {
      keptFrom,
      attempts,
      ...(executionId !== undefined ? { executionId } : {}),
      output: output ?? {},
      // Stored apart in the earlier run: the new run refers to it rather than storing it again.
      ...(outputRef ? { outputRef } : {}),
      ...(files ? { files } : {}),
      ...(warnings ? { warnings } : {}),
      timings,
    });
  }
  return kept;
}

/** The node ids, every node after all of its upstream nodes. */
function topologicalOrder(compiled: CompiledWorkflow): string[] {
  const waiting = new Map(compiled.nodeIds.map((id) => [id, compiled.incoming(id).length]));
  const ready = compiled.nodeIds.filter((id) => waiting.get(id) === 0);
  const order: string[] = [];
  while (ready.length > 0) {
    const id = ready.pop()!;
    order.push(id);
    for (const index of compiled.outgoing(id)) {
      const next = compiled.workflow.edges[index].to;
      const left = waiting.get(next)! - 1;
      waiting.set(next, left);
      if (left === 0) ready.push(next);
    }
  }
  return order;
}

/** A kept node as a record of the new run: succeeded, its incoming edges still to be counted at `start`. */
export function keptRecord(node: KeptNode, incoming: number): NodeRecord {
  return { ...structuredClone(node), status: 'succeeded', waiting: incoming, fired: 0 };
}

function incomingOf(compiled: CompiledWorkflow, id: string): unknown[] {
  return compiled
    .incoming(id)
    .map((index) => compiled.workflow.edges[index])
    .map((edge) => [edge.from, edge.on, edge.when ?? null])
    .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

/** Equal as JSON values, whatever the key order. */
function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
