import { boundNodeError, isErrorCode, retryPolicyOf } from '@podflow/protocol';
import type { ErrorCode, ExecResult, NodeError } from '@podflow/protocol';
import { emitNode, isActive, isLive, loadNodes, nodeDefinition, nodeState, setNodeStatus, type Step } from './engine-context';
import { advance, dispatchNode } from './engine-dispatch';
import { resolveOutgoing, settleFailure } from './engine-routing';
import { PLATFORM_RETRIES } from './attempts';
import { checkOutput } from './outputs';
import type { CodeNode, NodeState, RetryPolicySpec } from './types';

/** Exponential backoff stops growing here: a retry that waits longer helps no one. */
export const MAX_RETRY_DELAY_MS = 5 * 60_000;

/** Delay before retry number `retryIndex` (1 = first retry). */
export function retryDelayMs(spec: RetryPolicySpec, retryIndex: number): number {
  if (spec.backoff === 'fixed') return spec.delayMs;
  return Math.min(spec.delayMs * 2 ** (retryIndex - 1), MAX_RETRY_DELAY_MS);
}

/** How many retries (after the first attempt) a failure with this code may get on this node. */
export function retriesAllowed(node: CodeNode, code: ErrorCode): number {
  switch (retryPolicyOf(code)) {
    case 'always':
      return Math.max(node.retries.max, PLATFORM_RETRIES);
    case 'if-node-asks':
      return node.retries.max;
    case 'never':
      return 0;
  }
}

/**
 * `node_finished`: applies one execution result. Results for another execution (an older
 * attempt, a duplicate delivery, a canceled node) are ignored, which is what makes redelivery
 * from the results queue harmless.
 */
export async function onNodeFinished(step: Step, result: ExecResult): Promise<void> {
  if (!isLive(step) || result.runId !== step.run.id || !step.compiled.nodesById.has(result.nodeId)) return;
  await loadNodes(step, [result.nodeId]);
  const current = step.nodes.get(result.nodeId)!;
  if (!isActive(current.status) || current.executionId !== result.executionId) return;
  const node = nodeState(step, result.nodeId);
  const definition = nodeDefinition(step, result.nodeId);
  storeArtifacts(node, result);
  node.timings.finishedAt = step.at;

  let failure: NodeError;
  if (result.status === 'succeeded') {
    const check = checkOutput(definition.id, definition.outputs, result.output);
    setWarnings(node, [...(result.warnings ?? []), ...check.warnings]);
    if (!check.error && result.output) {
      node.output = result.output;
      if (result.outputRef) node.outputRef = result.outputRef;
      else delete node.outputRef;
      setNodeStatus(step, definition.id, 'succeeded');
      delete node.error;
      emitNode(step, definition.id);
      if ((await resolveOutgoing(step, definition.id, 'succeeded')) === undefined) return;
      await advance(step);
      return;
    }
    failure = check.error ?? { code: 'OUTPUT_INVALID', message: `node "${definition.id}" returned no output` };
  } else {
    failure = normaliseError(result.error);
  }
  await onNodeFailed(step, definition, node, failure);
}

/** Retries when the policy allows, otherwise settles the failure and routes it. */
async function onNodeFailed(step: Step, definition: CodeNode, node: NodeState, error: NodeError): Promise<void> {
  // User code chooses the message and stack: bounded before they reach state, events and args.error.
  const failed: NodeError = boundNodeError({ ...error, nodeId: definition.id });
  const retriesUsed = node.attempts - 1;
  if (retriesUsed < retriesAllowed(definition, failed.code)) {
    // The node keeps the failed attempt's error while it waits, so the API shows why it is retrying.
    node.error = failed;
    clearOutput(node);
    await dispatchNode(step, definition.id, retryDelayMs(definition.retries, retriesUsed + 1), failed);
  } else {
    clearOutput(node);
    await settleFailure(step, definition.id, failed);
  }
  await advance(step);
}

function clearOutput(node: NodeState): void {
  delete node.output;
  delete node.outputRef;
}

function storeArtifacts(node: NodeState, result: ExecResult): void {
  node.logs = result.logs;
  if (result.files) node.files = result.files;
  else delete node.files;
  if (node.timings.startedAt === undefined && result.timings?.startedAt !== undefined) node.timings.startedAt = result.timings.startedAt;
  setWarnings(node, result.warnings ?? []);
}

function setWarnings(node: NodeState, warnings: string[]): void {
  if (warnings.length > 0) node.warnings = warnings;
  else delete node.warnings;
}

/** A worker should always send a coded error; if not, the failure still counts, as a code failure. */
function normaliseError(error: NodeError | undefined): NodeError {
  if (!error) return { code: 'CODE_EXECUTION_FAILED', message: 'the worker reported a failure without an error' };
  if (isErrorCode(error.code)) return error;
  return { ...error, code: 'CODE_EXECUTION_FAILED', details: { ...error.details, reportedCode: error.code } };
}
