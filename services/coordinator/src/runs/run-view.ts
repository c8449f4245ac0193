import { emptyRecord, type JsonObject } from '@podflow/protocol';
import type { NodeState, RunRecord } from '@podflow/workflow';

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

/** What the API shows of a run: its record, inputs, outputs and a page of its nodes. */
export interface RunSnapshot {
  run: RunRecord;
  inputs: JsonObject;
  outputs?: JsonObject;
  /** In definition order. */
  nodes: Array<[string, NodeState]>;
  nodesTotal: number;
  nextNodeCursor?: string;
}

/** One node as the API shows it. */
export function nodeView(node: NodeState) {
  return {
    status: node.status,
    attempts: node.attempts,
    ...(node.keptFrom !== undefined ? { keptFrom: node.keptFrom } : {}),
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

/** The API shape of a run (DESIGN.md `GET /v1/runs/:id`), with `nodesTotal` and, for a partial page, `nextNodeCursor`. */
export function runView(snapshot: RunSnapshot) {
  const { run } = snapshot;
  // Node ids are user keys: without a prototype, "__proto__" is a node like any other.
  const nodes = emptyRecord<unknown>();
  for (const [id, node] of snapshot.nodes) nodes[id] = nodeView(node);
  return {
    id: run.id,
    status: run.status,
    workflowId: run.workflowId,
    ...(run.workflowVersion ? { workflowVersion: run.workflowVersion } : {}),
    ...(run.resumedFrom !== undefined ? { resumedFrom: run.resumedFrom } : {}),
    ...(run.test ? { test: run.test } : {}),
    ...(run.tool !== undefined ? { tool: run.tool } : {}),
    inputs: snapshot.inputs,
    outputs: snapshot.outputs ?? null,
    ...(run.error ? { error: run.error } : {}),
    nodes,
    nodesTotal: snapshot.nodesTotal,
    ...(snapshot.nextNodeCursor !== undefined ? { nextNodeCursor: snapshot.nextNodeCursor } : {}),
    createdAt: iso(run.createdAt),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
  };
}

/** Short form for listings. */
export function runSummary(run: RunRecord) {
  return {
    id: run.id,
    status: run.status,
    workflowId: run.workflowId,
    ...(run.resumedFrom !== undefined ? { resumedFrom: run.resumedFrom } : {}),
    ...(run.tool !== undefined ? { tool: run.tool } : {}),
    createdAt: iso(run.createdAt),
    finishedAt: iso(run.finishedAt),
    ...(run.error ? { error: run.error } : {}),
  };
}
