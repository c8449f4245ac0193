import { PodflowError, boundNodeError, type NodeError } from '@podflow/protocol';
import { emitNode, loadNodes, resolveEdge, setNodeStatus, type Step } from './engine-context';
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
 */
export async function resolveOutgoing(step: Step, nodeId: string, outcome: 'succeeded' | 'failed', settled?: (index: number) => boolean): Promise<number[] | undefined> {
  const { edges } = step.compiled.workflow;
  const outgoing = step.compiled.outgoing(nodeId);
  await loadNodes(step, outgoing.map((index) => edges[index].to));
  const matching = new Set(outgoing.filter((index) => !settled?.(index) && (outcome === 'succeeded' ? edges[index].on !== 'failure' : edges[index].on !== 'success')));
  const conditions = [...matching].flatMap((index) => (edges[index].when !== undefined ? [edges[index].when!] : []));
  const context = conditions.length > 0 ? await contextFor(step, conditions) : undefined;
  const fired: number[] = [];
  for (const index of outgoing) {
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
