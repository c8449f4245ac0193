import { PodflowError, boundNodeError, type NodeError } from '@podflow/protocol';
import { emitNode, nodeState, type Step } from './engine-context';
import { failRunWithNodeError, terminateRun } from './engine-terminate';
import { buildExpressionContext, evaluateExpression, isTruthy } from './expressions';

/**
 * Resolves every outgoing edge of a node that just reached `succeeded` or `failed`.
 * `success` edges follow successes, `failure` edges failures, `always` both; a matching edge
 * fires only if its `when` is absent or truthy (evaluated with the node's result in the context).
 * @returns the indexes of the edges that fired, or `undefined` when a `when` could not be
 * evaluated: the run has then failed with INPUT_BINDING_FAILED (a broken condition must not
 * silently pick a branch).
 */
export async function resolveOutgoing(step: Step, nodeId: string, outcome: 'succeeded' | 'failed'): Promise<number[] | undefined> {
  const { state } = step;
  const context = buildExpressionContext(state);
  const fired: number[] = [];
  for (const index of step.edges.outgoing.get(nodeId) ?? []) {
    const edge = state.workflow.edges[index];
    const matches = outcome === 'succeeded' ? edge.on !== 'failure' : edge.on !== 'success';
    let fires = matches;
    if (matches && edge.when !== undefined) {
      try {
        fires = isTruthy(await evaluateExpression(edge.when, context, `"when" of edge ${edge.from}→${edge.to} (edges[${index}])`, step.expressionLimits));
      } catch (error) {
        if (!(error instanceof PodflowError)) throw error;
        failRunWithNodeError(step, error.toNodeError(edge.to));
        return undefined;
      }
    }
    state.edges[index] = fires ? 'fired' : 'not_fired';
    if (fires) fired.push(index);
  }
  return fired;
}

/**
 * A node failed for good (no retry left, or never retried): record it, route the failure along
 * failure/always edges, and fail the whole run when no such edge fired (DESIGN.md "Errors").
 */
export async function settleFailure(step: Step, nodeId: string, error: NodeError): Promise<void> {
  const node = nodeState(step, nodeId);
  node.status = 'failed';
  node.error = boundNodeError({ ...error, nodeId });
  node.timings.finishedAt = step.at;
  emitNode(step, nodeId, node.error);
  const fired = await resolveOutgoing(step, nodeId, 'failed');
  if (fired !== undefined && fired.length === 0) failRunWithNodeError(step, node.error);
}

/** Marks the run failed for a run-level problem (e.g. the workflow `output` expression). */
export function failRun(step: Step, error: NodeError): void {
  terminateRun(step, 'failed', error, { code: 'CANCELED', message: `canceled because the run failed with ${error.code}` });
}
