import { emptyRecord, ownValue, type JsonObject } from '@podflow/protocol';
import { emitNode, emitRun, newStep, type Step } from './engine-context';
import type { ExpressionLimits } from './expression-budget';
import { advance } from './engine-dispatch';
import { onNodeFinished } from './engine-results';
import { cancelRun, failUnapplicable, timeoutRun } from './engine-terminate';
import type { EngineEvent, NodeState, RunState, TransitionResult, Workflow } from './types';

/** Everything needed to create a run; `now` becomes `createdAt` (the engine has no clock of its own). */
export interface CreateRunParams {
  id: string;
  tenantId: string;
  workflow: Workflow;
  workflowVersion?: number;
  inputs: JsonObject;
  now: number;
}

/** What the caller tunes about a transition; the defaults suit tests and embedded use. */
export interface TransitionOptions {
  /** Bounds of every expression the transition evaluates (input bindings, `when`, workflow `output`). */
  expressionLimits?: ExpressionLimits;
}

/**
 * A new run: `queued`, every node `pending` with no attempts, every edge unresolved. `nodes` has
 * no prototype, so a node id such as `__proto__` or `constructor` is an ordinary key; it stays an
 * own key through JSON and `structuredClone`, and the engine reads it with `ownValue`.
 */
export function createRunState(params: CreateRunParams): RunState {
  const nodes = emptyRecord<NodeState>();
  for (const node of params.workflow.nodes) nodes[node.id] = { status: 'pending', attempts: 0, timings: {} };
  return {
    id: params.id,
    tenantId: params.tenantId,
    workflow: structuredClone(params.workflow),
    ...(params.workflowVersion !== undefined ? { workflowVersion: params.workflowVersion } : {}),
    inputs: structuredClone(params.inputs),
    status: 'queued',
    nodes,
    edges: params.workflow.edges.map(() => 'pending'),
    createdAt: params.now,
  };
}

/**
 * Applies one event to a run and returns the new state plus the commands the caller must carry
 * out, in order. Pure: no I/O, no clock (time comes from `event.at`), and the input state is
 * never mutated. Idempotent by construction: an event that no longer applies (a duplicate or
 * stale result, a second `start`, a late timer) returns the same state and no commands, so
 * at-least-once delivery is safe as long as the caller stores the state atomically with
 * applying the commands.
 */
export async function transition(state: RunState, event: EngineEvent, options: TransitionOptions = {}): Promise<TransitionResult> {
  const step = newStep(structuredClone(state), event.at, options.expressionLimits);
  // Cloned too, so the returned state never aliases the caller's event payload.
  const owned = structuredClone(event);
  switch (owned.type) {
    case 'start':
      await start(step);
      break;
    case 'node_started':
      nodeStarted(step, owned.nodeId, owned.executionId);
      break;
    case 'node_finished':
      await onNodeFinished(step, owned.result);
      break;
    case 'cancel':
      cancelRun(step, owned.reason);
      break;
    case 'run_timeout':
      timeoutRun(step);
      break;
    case 'fail':
      failUnapplicable(step, owned.error);
      break;
    default: {
      const unknown: never = owned;
      throw new Error(`unknown engine event ${JSON.stringify(unknown)}`);
    }
  }
  return { state: step.state, commands: step.commands };
}

async function start(step: Step): Promise<void> {
  const { state } = step;
  if (state.status !== 'queued') return;
  state.status = 'running';
  state.startedAt = step.at;
  state.deadlineAt = step.at + state.workflow.timeoutMs;
  step.commands.push({ type: 'schedule_run_timeout', at: state.deadlineAt });
  emitRun(step);
  await advance(step);
}

function nodeStarted(step: Step, nodeId: string, executionId: string): void {
  if (step.state.status !== 'running') return;
  const node = ownValue(step.state.nodes, nodeId);
  if (!node || node.status !== 'queued' || node.executionId !== executionId) return;
  node.status = 'running';
  node.timings.startedAt = step.at;
  emitNode(step, nodeId);
}
