import { PodflowError, emptyRecord, executionIdOf } from '@podflow/protocol';
import type { ExecJob, JsonObject, JsonValue, NodeError } from '@podflow/protocol';
import { edgeState, emitNode, emitRun, isLive, loadEdges, loadNodes, nodeDefinition, peekNode, resolveEdge, runInputs, runRecord, setNodeStatus, type Step } from './engine-context';
import { contextFor } from './engine-expressions';
import { failRun, settleFailure } from './engine-routing';
import { evaluateExpression } from './expressions';
import { checkInputTypes } from './outputs';
import type { CodeNode } from './types';

/**
 * Moves the run forward until nothing more can happen without an outside event: every node that
 * became ready (all incoming edges resolved) is dispatched (a root, or one fired edge) or skipped
 * (none fired; the skip propagates), in definition-order passes (ready-queue.ts). Then the run
 * completes if no node is left open. Cost: the nodes that became ready and what their `args` read.
 */
export async function advance(step: Step): Promise<void> {
  while (isLive(step) && step.ready.size > 0) {
    const pass = step.ready.startPass();
    // The pass's nodes and their successors (a skip resolves their edges) in one load.
    await loadNodes(step, [...pass, ...pass.flatMap((id) => successorsOf(step, id))]);
    for (let id = step.ready.take(); id !== undefined; id = step.ready.take()) {
      if (!isLive(step)) return;
      const node = peekNode(step, id);
      if (node.status !== 'pending' || node.waiting > 0) continue;
      if (step.compiled.incoming(id).length === 0 || node.fired > 0) await dispatchNode(step, id, 0);
      else await skipNode(step, id);
    }
  }
  if (isLive(step)) await completeIfDone(step);
}

async function skipNode(step: Step, nodeId: string): Promise<void> {
  await loadNodes(step, successorsOf(step, nodeId));
  const node = setNodeStatus(step, nodeId, 'skipped');
  node.timings.finishedAt = step.at;
  emitNode(step, nodeId);
  for (const index of step.compiled.outgoing(nodeId)) resolveEdge(step, index, false);
}

/** The targets of a node's outgoing edges: what resolving them touches. */
export function successorsOf(step: Step, nodeId: string): string[] {
  return step.compiled.outgoing(nodeId).map((index) => step.compiled.workflow.edges[index].to);
}

/**
 * Starts a new attempt: computes `args`, bumps `attempts`, and enqueues the job after `delayMs`.
 * An input binding that fails to evaluate fails the node with INPUT_BINDING_FAILED before it
 * ever runs, routed like any other failure.
 * @param retryOf the failed attempt's error, carried on the node event of a retry.
 */
export async function dispatchNode(step: Step, nodeId: string, delayMs: number, retryOf?: NodeError): Promise<void> {
  const definition = nodeDefinition(step, nodeId);
  let args: JsonObject;
  try {
    args = await buildArgs(step, definition);
  } catch (error) {
    if (!(error instanceof PodflowError)) throw error;
    await settleFailure(step, nodeId, error.toNodeError(nodeId));
    return;
  }
  const node = setNodeStatus(step, nodeId, 'queued');
  node.attempts += 1;
  node.executionId = executionIdOf(step.run.id, nodeId, node.attempts);
  node.timings = { queuedAt: step.at };
  const job: ExecJob = {
    executionId: node.executionId,
    tenantId: step.run.tenantId,
    runId: step.run.id,
    nodeId,
    attempt: node.attempts,
    language: definition.language,
    code: definition.code,
    args,
    timeoutMs: definition.timeoutMs,
    dependencies: [...definition.dependencies],
    ...(definition.resources ? { resources: { ...definition.resources } } : {}),
    network: definition.network,
    ...(definition.returnAny ? { returnAny: true } : {}),
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
  if (definition.inputs) {
    const bindings = Object.entries(definition.inputs);
    const context = await contextFor(step, bindings.map(([, expression]) => expression));
    // Binding names are user keys: `__proto__` must become a key of args, not its prototype.
    const args = emptyRecord<JsonValue>();
    for (const [name, expression] of bindings) {
      const value = await evaluateExpression(expression, context, `input binding "${name}" of node "${definition.id}"`, step.expressionLimits);
      if (value !== undefined) args[name] = value;
    }
    checkInputTypes(definition.id, definition.inputTypes, args);
    return args;
  }
  const ancestors = step.compiled.ancestorsOf(definition.id);
  const incoming = step.compiled.incoming(definition.id);
  await loadNodes(step, ancestors);
  await loadEdges(step, incoming);
  // The outputs are shared with the records, not copied (a node's args carry every ancestor's,
  // so a chain's step k would copy k of them): nothing changes a job's args after this.
  const nodes = emptyRecord<JsonValue>();
  for (const id of ancestors) {
    const upstream = peekNode(step, id);
    if (upstream.status !== 'succeeded') continue;
    nodes[id] = {
      output: upstream.output ?? {},
      ...(upstream.files ? { files: upstream.files as unknown as JsonObject } : {}),
    };
  }
  const args: JsonObject = { inputs: await runInputs(step), nodes };
  // The first failed node (by edge order) whose failure/always edge brought us here.
  const { edges } = step.compiled.workflow;
  const routedFrom = incoming
    .filter((index) => edgeState(step, index) === 'fired' && edges[index].on !== 'success')
    .map((index) => edges[index].from)
    .find((from) => peekNode(step, from).status === 'failed' && peekNode(step, from).error);
  const failure = routedFrom !== undefined ? peekNode(step, routedFrom).error : undefined;
  if (routedFrom !== undefined && failure) {
    const error: { [key: string]: JsonValue } = { nodeId: routedFrom, code: failure.code, message: failure.message };
    if (failure.stack !== undefined) error.stack = failure.stack;
    args.error = error;
  }
  return args;
}

async function completeIfDone(step: Step): Promise<void> {
  if (step.run.open > 0) return;
  const { workflow } = step.compiled;
  let outputs: JsonObject;
  if (workflow.output !== undefined) {
    let value: JsonValue | undefined;
    try {
      value = await evaluateExpression(workflow.output, await contextFor(step, [workflow.output]), 'workflow output', step.expressionLimits);
    } catch (error) {
      if (!(error instanceof PodflowError)) throw error;
      await failRun(step, error.toNodeError());
      return;
    }
    if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) {
      const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
      await failRun(step, {
        code: 'INPUT_BINDING_FAILED',
        message: `workflow output: expression ${JSON.stringify(workflow.output)} must evaluate to an object, got ${got}; wrap it, e.g. { "result": ... }`,
      });
      return;
    }
    outputs = value ?? {};
  } else {
    await loadNodes(step, step.compiled.leaves);
    outputs = emptyRecord<JsonValue>();
    for (const id of step.compiled.leaves) {
      const node = peekNode(step, id);
      if (node.status === 'succeeded') outputs[id] = structuredClone(node.output ?? {});
    }
  }
  const run = runRecord(step);
  run.outputs = outputs;
  delete run.outputsRef;
  run.status = 'succeeded';
  run.finishedAt = step.at;
  emitRun(step);
}
