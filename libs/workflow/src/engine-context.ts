import { ownValue, type NodeError } from '@podflow/protocol';
import { DEFAULT_EXPRESSION_LIMITS, type ExpressionLimits } from './expression-budget';
import { indexEdges, type EdgeIndex } from './graph';
import type { CodeNode, EngineCommand, NodeState, RunState } from './types';

/**
 * One transition in progress: the (cloned, owned) state being changed, the commands produced so
 * far, and the event time, which is the only clock the engine knows.
 */
export interface Step {
  state: RunState;
  commands: EngineCommand[];
  at: number;
  edges: EdgeIndex;
  nodesById: Map<string, CodeNode>;
  expressionLimits: ExpressionLimits;
}

/** Starts a step on a state the caller already owns (a clone of the stored one). */
export function newStep(state: RunState, at: number, expressionLimits: ExpressionLimits = DEFAULT_EXPRESSION_LIMITS): Step {
  return {
    state,
    commands: [],
    at,
    edges: indexEdges(state.workflow.edges),
    nodesById: new Map(state.workflow.nodes.map((node) => [node.id, node])),
    expressionLimits,
  };
}

/** The node's run state; a missing node is a bug (states are created from their workflow), so it throws. */
export function nodeState(step: Step, nodeId: string): NodeState {
  const node = ownValue(step.state.nodes, nodeId);
  if (!node) throw new Error(`run ${step.state.id} has no node "${nodeId}"`);
  return node;
}

/** The node's definition; throws for an unknown id, which only a bug could produce. */
export function nodeDefinition(step: Step, nodeId: string): CodeNode {
  const node = step.nodesById.get(nodeId);
  if (!node) throw new Error(`workflow ${step.state.workflow.id} has no node "${nodeId}"`);
  return node;
}

/** Appends a node transition to the run's event stream (after the status is set). */
export function emitNode(step: Step, nodeId: string, error?: NodeError): void {
  const node = nodeState(step, nodeId);
  step.commands.push({
    type: 'emit',
    event: { type: 'node', runId: step.state.id, nodeId, status: node.status, attempt: node.attempts, ...(error ? { error } : {}), at: step.at },
  });
}

/** Appends a run transition to the run's event stream (after the status is set). */
export function emitRun(step: Step): void {
  const { state } = step;
  step.commands.push({
    type: 'emit',
    event: { type: 'run', runId: state.id, status: state.status, ...(state.error ? { error: state.error } : {}), at: step.at },
  });
}

/** Queued or running: the node has an execution that may still report, and that cancel must kill. */
export function isActive(status: NodeState['status']): boolean {
  return status === 'queued' || status === 'running';
}
