import { PodflowError, emptyRecord, executionIdOf } from '@podflow/protocol';
import type { ExecJob, JsonObject, JsonValue, NodeError } from '@podflow/protocol';
import { emitNode, emitRun, isActive, nodeDefinition, nodeState, type Step } from './engine-context';
import { failRun, settleFailure } from './engine-routing';
import { buildExpressionContext, evaluateExpression } from './expressions';
import { ancestorsOf } from './graph';
import type { CodeNode } from './types';

/**
 * Moves the run forward until nothing more can happen without an outside event: every pending
 * node whose incoming edges are all resolved is dispatched (a root, or one fired edge) or skipped
 * (none fired; the skip propagates). Then the run completes if no node is left to run.
 */
export async function advance(step: Step): Promise<void> {
  const { state } = step;
  let changed = true;
  while (changed && state.status === 'running') {
    changed = false;
    for (const { id } of state.workflow.nodes) {
      if (state.status !== 'running') return;
      if (nodeState(step, id).status !== 'pending') continue;
      const incoming = step.edges.incoming.get(id) ?? [];
      if (incoming.some((index) => state.edges[index] === 'pending')) continue;
      changed = true;
      if (incoming.length === 0 || incoming.some((index) => state.edges[index] === 'fired')) await dispatchNode(step, id, 0);
      else skipNode(step, id);
    }
  }
  if (state.status === 'running') await completeIfDone(step);
}

function skipNode(step: Step, nodeId: string): void {
  const node = nodeState(step, nodeId);
  node.status = 'skipped';
  node.timings.finishedAt = step.at;
  emitNode(step, nodeId);
  for (const index of step.edges.outgoing.get(nodeId) ?? []) step.state.edges[index] = 'not_fired';
}

/**
 * Starts a new attempt: computes `args`, bumps `attempts`, and enqueues the job after `delayMs`.
 * An input binding that fails to evaluate fails the node with INPUT_BINDING_FAILED before it
 * ever runs, routed like any other failure.
 * @param retryOf the failed attempt's error, carried on the node event of a retry.
 */
export async function dispatchNode(step: Step, nodeId: string, delayMs: number, retryOf?: NodeError): Promise<void> {
  const definition = nodeDefinition(step, nodeId);
  const node = nodeState(step, nodeId);
  let args: JsonObject;
  try {
    args = await buildArgs(step, definition);
  } catch (error) {
    if (!(error instanceof PodflowError)) throw error;
    await settleFailure(step, nodeId, error.toNodeError(nodeId));
    return;
  }
  node.attempts += 1;
  node.executionId = executionIdOf(step.state.id, nodeId, node.attempts);
  node.status = 'queued';
  node.timings = { queuedAt: step.at };
  const job: ExecJob = {
    executionId: node.executionId,
    tenantId: step.state.tenantId,
    runId: step.state.id,
    nodeId,
    attempt: node.attempts,
    language: definition.language,
    code: definition.code,
    args,
    timeoutMs: definition.timeoutMs,
    dependencies: [...definition.dependencies],
    ...(definition.resources ? { resources: { ...definition.resources } } : {}),
    network: definition.network,
    enqueuedAt: step.at,
  };
  step.commands.push({ type: 'enqueue', job, delayMs });
  emitNode(step, nodeId, retryOf);
}

/**
 * `args` for `main` (DESIGN.md "What the user code sees"): exactly the bound object when the node
 * declares `inputs`; otherwise run inputs plus the results of every succeeded ancestor, and on an
 * error branch the failure that routed here.
 */
async function buildArgs(step: Step, definition: CodeNode): Promise<JsonObject> {
  const { state } = step;
  if (definition.inputs) {
    const context = buildExpressionContext(state);
    // Binding names are user keys: `__proto__` must become a key of args, not its prototype.
    const args = emptyRecord<JsonValue>();
    for (const [name, expression] of Object.entries(definition.inputs)) {
      const value = await evaluateExpression(expression, context, `input binding "${name}" of node "${definition.id}"`, step.expressionLimits);
      if (value !== undefined) args[name] = value;
    }
    return args;
  }
  const ancestors = ancestorsOf(definition.id, state.workflow.edges, step.edges);
  const nodes = emptyRecord<JsonValue>();
  for (const { id } of state.workflow.nodes) {
    const upstream = nodeState(step, id);
    if (!ancestors.has(id) || upstream.status !== 'succeeded') continue;
    nodes[id] = {
      output: structuredClone(upstream.output ?? {}),
      ...(upstream.files ? { files: structuredClone(upstream.files) as unknown as JsonObject } : {}),
    };
  }
  const args: JsonObject = { inputs: structuredClone(state.inputs), nodes };
  // The first failed node (by edge order) whose failure/always edge brought us here.
  const routedFrom = (step.edges.incoming.get(definition.id) ?? [])
    .filter((index) => state.edges[index] === 'fired' && state.workflow.edges[index].on !== 'success')
    .map((index) => state.workflow.edges[index].from)
    .find((from) => nodeState(step, from).status === 'failed' && nodeState(step, from).error);
  const failure = routedFrom !== undefined ? nodeState(step, routedFrom).error : undefined;
  if (routedFrom !== undefined && failure) {
    const error: { [key: string]: JsonValue } = { nodeId: routedFrom, code: failure.code, message: failure.message };
    if (failure.stack !== undefined) error.stack = failure.stack;
    args.error = error;
  }
  return args;
}

async function completeIfDone(step: Step): Promise<void> {
  const { state } = step;
  if (Object.values(state.nodes).some((node) => node.status === 'pending' || isActive(node.status))) return;
  let outputs: JsonObject;
  if (state.workflow.output !== undefined) {
    let value: JsonValue | undefined;
    try {
      value = await evaluateExpression(state.workflow.output, buildExpressionContext(state), 'workflow output', step.expressionLimits);
    } catch (error) {
      if (!(error instanceof PodflowError)) throw error;
      failRun(step, error.toNodeError());
      return;
    }
    if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) {
      const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
      failRun(step, {
        code: 'INPUT_BINDING_FAILED',
        message: `workflow output: expression ${JSON.stringify(state.workflow.output)} must evaluate to an object, got ${got}; wrap it, e.g. { "result": ... }`,
      });
      return;
    }
    outputs = value ?? {};
  } else {
    outputs = emptyRecord<JsonValue>();
    for (const { id } of state.workflow.nodes) {
      const isLeaf = (step.edges.outgoing.get(id) ?? []).length === 0;
      const node = nodeState(step, id);
      if (isLeaf && node.status === 'succeeded') outputs[id] = structuredClone(node.output ?? {});
    }
  }
  state.outputs = outputs;
  delete state.outputsRef;
  state.status = 'succeeded';
  state.finishedAt = step.at;
  emitRun(step);
}
