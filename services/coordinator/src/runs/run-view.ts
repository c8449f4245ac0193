import { emptyRecord } from '@podflow/protocol';
import type { RunState } from '@podflow/workflow';

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

/** The API shape of a run (DESIGN.md `GET /v1/runs/:id`). */
export function runView(state: RunState) {
  // Node ids are user keys: without a prototype, "__proto__" is a node like any other.
  const nodes = emptyRecord<unknown>();
  for (const [id, node] of Object.entries(state.nodes)) {
    nodes[id] = {
      status: node.status,
      attempts: node.attempts,
      ...(node.output !== undefined ? { output: node.output } : {}),
      ...(node.files ? { files: node.files } : {}),
      ...(node.error ? { error: node.error } : {}),
      ...(node.logs ? { logs: node.logs } : {}),
      ...(node.warnings && node.warnings.length > 0 ? { warnings: node.warnings } : {}),
      timings: {
        queuedAt: iso(node.timings.queuedAt),
        startedAt: iso(node.timings.startedAt),
        finishedAt: iso(node.timings.finishedAt),
        durationMs: node.timings.startedAt && node.timings.finishedAt ? node.timings.finishedAt - node.timings.startedAt : undefined,
      },
    };
  }
  return {
    id: state.id,
    status: state.status,
    workflowId: state.workflow.id,
    ...(state.workflowVersion ? { workflowVersion: state.workflowVersion } : {}),
    inputs: state.inputs,
    outputs: state.outputs ?? null,
    ...(state.error ? { error: state.error } : {}),
    nodes,
    createdAt: iso(state.createdAt),
    startedAt: iso(state.startedAt),
    finishedAt: iso(state.finishedAt),
  };
}

/** Short form for listings. */
export function runSummary(state: RunState) {
  return {
    id: state.id,
    status: state.status,
    workflowId: state.workflow.id,
    createdAt: iso(state.createdAt),
    finishedAt: iso(state.finishedAt),
    ...(state.error ? { error: state.error } : {}),
  };
}
