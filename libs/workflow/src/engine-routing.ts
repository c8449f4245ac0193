import { PodflowError, boundNodeError, type NodeError } from '@podflow/protocol';
import { emitNode, isLive, loadNodes, nodeState, peekNode, resolveEdge, setNodeStatus, type Step } from './engine-context';
import { contextFor } from './engine-expressions';
import { failRunWithNodeError, terminateRun } from './engine-terminate';
import { evaluateExpression, isTruthy } from './expressions';

/**
 * Resolves every outgoing edge of a node that just reached `succeeded` or `failed`.
 * `success` edges follow successes, `failure` edges failures, `always` both; a matching edge
 * fires only if its `when` is absent or truthy (evaluated with the node's result in the context).
 * @returns the indexes of the edges that fired, or `undefined` when a `when` could not be
 * evaluated: the run has then failed with INPUT_BINDING_FAILED (a broken condition must not
 * silently pick a branch). `settled`: edges whose target's outcome is fixed already (a kept node
 * of a resumed or test run), resolved by their `on` alone without evaluating their `when`: it
 * cannot change anything, so it must not fail the run either.
 *
 * A succeeded node with more than `step.edgePage` outgoing edges resolves the first page only; the
 * rest follow a page per step (`resolveMoreEdges`), the node's `edgesResolved` counting them. One
 * such page per step: a wide node that finishes in a step where another resolved a page resolves
 * none yet (its whole fan-out follows). A failed node routes all of its edges at once: whether the
 * run fails depends on all of them.
 */
export async function resolveOutgoing(step: Step, nodeId: string, outcome: 'succeeded' | 'failed', settled?: (index: number) => boolean): Promise<number[] | undefined> {
  const outgoing = step.compiled.outgoing(nodeId);
  if (outcome === 'succeeded' && !settled && step.edgePage !== undefined && outgoing.length > step.edgePage) return resolvePage(step, nodeId, 0);
  return resolveEdges(step, outgoing, outcome, settled);
}

/**
 * `resolve_edges`: the next page of a succeeded node's outgoing edges, and another
 * `resolve_edges` while some are left. Undefined when there is nothing to do (the run is over, the
 * node has no edges left: a late or repeated event) or a `when` failed the run.
 */
export async function resolveMoreEdges(step: Step, nodeId: string): Promise<number[] | undefined> {
  if (!isLive(step) || !step.compiled.nodesById.has(nodeId)) return undefined;
  await loadNodes(step, [nodeId]);
  const { status, edgesResolved: from } = peekNode(step, nodeId);
  if (status !== 'succeeded' || from === undefined) return undefined;
  return resolvePage(step, nodeId, from);
}

/**
 * The page of a succeeded node's outgoing edges from position `from` (an empty one when another
 * wide node had this step's page); the cursor and the next `resolve_edges` while some are left.
 */
function resolvePage(step: Step, nodeId: string, from: number): Promise<number[] | undefined> {
  const outgoing = step.compiled.outgoing(nodeId);
  const size = step.widePageTaken ? 0 : (step.edgePage ?? outgoing.length);
  step.widePageTaken = true;
  const to = Math.min(outgoing.length, from + size);
  const node = nodeState(step, nodeId);
  if (to < outgoing.length) {
    node.edgesResolved = to;
    step.commands.push({ type: 'resolve_edges', nodeId, at: step.at });
  } else delete node.edgesResolved;
  return resolveEdges(step, outgoing.slice(from, to), 'succeeded');
}

/** Resolves `indexes` (outgoing edges of one node, in order) for the node's `outcome`; see `resolveOutgoing`. */
async function resolveEdges(step: Step, indexes: readonly number[], outcome: 'succeeded' | 'failed', settled?: (index: number) => boolean): Promise<number[] | undefined> {
  const { edges } = step.compiled.workflow;
  await loadNodes(step, indexes.map((index) => edges[index].to));
  const matching = new Set(indexes.filter((index) => !settled?.(index) && (outcome === 'succeeded' ? edges[index].on !== 'failure' : edges[index].on !== 'success')));
  const conditions = [...matching].flatMap((index) => (edges[index].when !== undefined ? [edges[index].when!] : []));
  const context = conditions.length > 0 ? await contextFor(step, conditions) : undefined;
  const fired: number[] = [];
  for (const index of indexes) {
    if (settled?.(index)) {
      resolveEdge(step, index, outcome === 'succeeded' ? edges[index].on !== 'failure' : edges[index].on !== 'success');
      continue;
    }
    const edge = edges[index];
    const matches = matching.has(index);
    let fires = matches;
    if (matches && edge.when !== undefined) {
      try {
        fires = isTruthy(await evaluateExpression(edge.when, context!, `"when" of edge ${edge.from}→${edge.to} (edges[${index}])`, step.expressionLimits));
      } catch (error) {
        if (!(error instanceof PodflowError)) throw error;
        await failRunWithNodeError(step, error.toNodeError(edge.to));
        return undefined;
      }
    }
    resolveEdge(step, index, fires);
    if (fires) fired.push(index);
  }
  return fired;
}

/**
 * A node failed for good (no retry left, or never retried): record it, route the failure along
 * failure/always edges, and fail the whole run when no such edge fired (DESIGN.md "Errors").
 */
export async function settleFailure(step: Step, nodeId: string, error: NodeError): Promise<void> {
  const node = setNodeStatus(step, nodeId, 'failed');
  node.error = boundNodeError({ ...error, nodeId });
  node.timings.finishedAt = step.at;
  emitNode(step, nodeId, node.error);
  const fired = await resolveOutgoing(step, nodeId, 'failed');
  if (fired !== undefined && fired.length === 0) await failRunWithNodeError(step, node.error);
}

/** Marks the run failed for a run-level problem (e.g. the workflow `output` expression). */
export async function failRun(step: Step, error: NodeError): Promise<void> {
  await terminateRun(step, 'failed', error, { code: 'CANCELED', message: `canceled because the run failed with ${error.code}` });
}
