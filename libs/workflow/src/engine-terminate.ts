import { boundNodeError, type NodeError } from '@podflow/protocol';
import { emitNode, emitRun, isActive, loadNodes, peekNode, runRecord, setNodeStatus, type Step } from './engine-context';
import { formatDuration } from './durations';

/**
 * Ends the run: every queued or running node is canceled (with a `cancel_execution` so its
 * sandbox is killed), every pending node is canceled, then the run takes `status` and `error`.
 * Nodes already finished keep their result. Reads every node: a run ends once.
 */
export async function terminateRun(step: Step, status: 'failed' | 'canceled', runError: NodeError, canceledNodeError: NodeError): Promise<void> {
  // Messages can quote user text (an expression, a cancel reason): bounded like node errors.
  const error = boundNodeError(runError);
  const nodeError = boundNodeError(canceledNodeError);
  const ids = step.compiled.nodeIds;
  await loadNodes(step, ids);
  for (const id of ids) {
    const current = peekNode(step, id);
    if (isActive(current.status) && current.executionId) {
      step.commands.push({ type: 'cancel_execution', nodeId: id, executionId: current.executionId });
    } else if (current.status !== 'pending') {
      continue;
    }
    const node = setNodeStatus(step, id, 'canceled');
    node.error = { ...nodeError, nodeId: id };
    node.timings.finishedAt = step.at;
    emitNode(step, id, node.error);
  }
  const run = runRecord(step);
  run.status = status;
  run.error = error;
  run.finishedAt = step.at;
  emitRun(step);
}

/** Fail fast: a node failed and no failure/always edge took the failure, so the run fails with its error. */
export async function failRunWithNodeError(step: Step, error: NodeError): Promise<void> {
  const runError: NodeError = {
    code: error.code,
    message: error.message,
    ...(error.nodeId !== undefined ? { nodeId: error.nodeId } : {}),
    ...(error.type !== undefined ? { type: error.type } : {}),
    ...(error.stack !== undefined ? { stack: error.stack } : {}),
  };
  const because = error.nodeId ? `node "${error.nodeId}" failed with ${error.code}` : `the run failed with ${error.code}`;
  await terminateRun(step, 'failed', runError, { code: 'CANCELED', message: `canceled because ${because}` });
}

/** `cancel` event: a no-op on a finished run. */
export async function cancelRun(step: Step, reason?: string): Promise<void> {
  const { status } = step.run;
  if (status === 'succeeded' || status === 'failed' || status === 'canceled') return;
  const message = reason ?? 'run canceled';
  await terminateRun(step, 'canceled', { code: 'CANCELED', message }, { code: 'CANCELED', message: `canceled: ${message}` });
}

/** `run_timeout` event: only a running run can time out; a late timer on a finished run is stale. */
export async function timeoutRun(step: Step): Promise<void> {
  if (step.run.status !== 'running') return;
  const { timeoutMs } = step.compiled.workflow;
  const seconds = Math.round(timeoutMs / 1_000);
  await terminateRun(
    step,
    'failed',
    { code: 'RUN_TIMEOUT', message: `run exceeded its timeout of ${seconds}s; pending nodes were canceled` },
    { code: 'RUN_TIMEOUT', message: `canceled because the run exceeded its timeout of ${formatDuration(timeoutMs)}` },
  );
}

/** `fail` event: the service could not apply an event to a live run; it fails now rather than at its timeout. */
export async function failUnapplicable(step: Step, error: NodeError): Promise<void> {
  if (step.run.status !== 'running' && step.run.status !== 'queued') return;
  await terminateRun(step, 'failed', error, { code: 'CANCELED', message: `canceled because the run failed with ${error.code}` });
}

