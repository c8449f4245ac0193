import { boundNodeError, type NodeError } from '@podflow/protocol';
import { emitNode, emitRun, isActive, nodeState, type Step } from './engine-context';
import { formatDuration } from './durations';

/**
 * Ends the run: every queued or running node is canceled (with a `cancel_execution` so its
 * sandbox is killed), every pending node is canceled, then the run takes `status` and `error`.
 * Nodes already finished keep their result.
 */
export function terminateRun(step: Step, status: 'failed' | 'canceled', runError: NodeError, canceledNodeError: NodeError): void {
  const { state } = step;
  // Messages can quote user text (an expression, a cancel reason): bounded like node errors.
  const error = boundNodeError(runError);
  const nodeError = boundNodeError(canceledNodeError);
  for (const { id } of state.workflow.nodes) {
    const node = nodeState(step, id);
    if (isActive(node.status) && node.executionId) {
      step.commands.push({ type: 'cancel_execution', nodeId: id, executionId: node.executionId });
    } else if (node.status !== 'pending') {
      continue;
    }
    node.status = 'canceled';
    node.error = { ...nodeError, nodeId: id };
    node.timings.finishedAt = step.at;
    emitNode(step, id, node.error);
  }
  state.status = status;
  state.error = error;
  state.finishedAt = step.at;
  emitRun(step);
}

/** Fail fast: a node failed and no failure/always edge took the failure, so the run fails with its error. */
export function failRunWithNodeError(step: Step, error: NodeError): void {
  const runError: NodeError = {
    code: error.code,
    message: error.message,
    ...(error.nodeId !== undefined ? { nodeId: error.nodeId } : {}),
    ...(error.type !== undefined ? { type: error.type } : {}),
    ...(error.stack !== undefined ? { stack: error.stack } : {}),
  };
  const because = error.nodeId ? `node "${error.nodeId}" failed with ${error.code}` : `the run failed with ${error.code}`;
  terminateRun(step, 'failed', runError, { code: 'CANCELED', message: `canceled because ${because}` });
}

/** `cancel` event: a no-op on a finished run. */
export function cancelRun(step: Step, reason?: string): void {
  const { state } = step;
  if (state.status === 'succeeded' || state.status === 'failed' || state.status === 'canceled') return;
  const message = reason ?? 'run canceled';
  terminateRun(step, 'canceled', { code: 'CANCELED', message }, { code: 'CANCELED', message: `canceled: ${message}` });
}

/** `run_timeout` event: only a running run can time out; a late timer on a finished run is stale. */
export function timeoutRun(step: Step): void {
  const { state } = step;
  if (state.status !== 'running') return;
  const seconds = Math.round(state.workflow.timeoutMs / 1_000);
  terminateRun(
    step,
    'failed',
    { code: 'RUN_TIMEOUT', message: `run exceeded its timeout of ${seconds}s; pending nodes were canceled` },
    { code: 'RUN_TIMEOUT', message: `canceled because the run exceeded its timeout of ${formatDuration(state.workflow.timeoutMs)}` },
  );
}

/** `fail` event: the service could not apply an event to a live run; it fails now rather than at its timeout. */
export function failUnapplicable(step: Step, error: NodeError): void {
  const { state } = step;
  if (state.status !== 'running' && state.status !== 'queued') return;
  terminateRun(step, 'failed', error, { code: 'CANCELED', message: `canceled because the run failed with ${error.code}` });
}
