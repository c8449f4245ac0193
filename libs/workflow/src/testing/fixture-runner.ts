/**
 * Drives the engine from a YAML fixture (Argo-style: fixtures describe the DAG scenario, the spec
 * only asserts). Test-only: excluded from the library build, may read files.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { ExecResult, JsonObject, NodeError, NodeFiles } from '@podflow/protocol';
import { executionIdOf } from '@podflow/protocol';
import { createRunState, transition } from '../engine';
import type { EngineCommand, EngineEvent, NodeState, RunState } from '../types';
import { parseWorkflow } from '../validate';

/** One scripted step. Exactly one of finish / start / cancel / timeout / replay_last. */
export interface FixtureStep {
  finish?: string;
  start?: string;
  cancel?: true | string;
  timeout?: true;
  replay_last?: true;
  status?: 'succeeded' | 'failed';
  output?: JsonObject;
  files?: NodeFiles;
  warnings?: string[];
  error?: NodeError;
  /** Target this attempt instead of the node's current one (to send stale results). */
  attempt?: number;
  /** Event time; defaults to 1000 × (step number). */
  at?: number;
  expect_commands?: number;
  expect_enqueued?: string[];
  expect_canceled?: string[];
  expect_status?: RunState['status'];
}

export interface FixtureExpect {
  status?: RunState['status'];
  error?: Partial<NodeError>;
  nodes?: Record<string, Partial<NodeState> & Record<string, unknown>>;
  outputs?: JsonObject;
  args?: Record<string, JsonObject>;
  enqueued?: string[];
  delays?: Record<string, number[]>;
  canceled?: string[];
}

export interface Fixture {
  file: string;
  description?: string;
  workflow: JsonObject;
  inputs?: JsonObject;
  script: FixtureStep[];
  expect: FixtureExpect;
}

export interface TraceEntry {
  step: FixtureStep | { start_run: true };
  event: EngineEvent;
  /** The state object handed to `transition`, to prove it was not mutated ... */
  input: RunState;
  /** ... by comparing it with this copy taken beforehand. */
  before: RunState;
  after: RunState;
  commands: EngineCommand[];
}

export function loadFixtures(dir: string): Fixture[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.yaml'))
    .sort()
    .map((name) => ({ file: name, ...(parse(readFileSync(join(dir, name), 'utf8')) as Omit<Fixture, 'file'>) }));
}

function resultFor(state: RunState, step: FixtureStep, nodeId: string): ExecResult {
  const node = state.nodes[nodeId];
  if (!node) throw new Error(`fixture step finishes unknown node "${nodeId}"`);
  const attempt = step.attempt ?? node.attempts;
  const status = step.status ?? 'succeeded';
  return {
    executionId: executionIdOf(state.id, nodeId, attempt),
    tenantId: state.tenantId,
    runId: state.id,
    nodeId,
    attempt,
    status,
    ...(status === 'succeeded' ? { output: step.output ?? {} } : {}),
    ...(step.files ? { files: step.files } : {}),
    ...(step.error ? { error: step.error } : {}),
    logs: { stdout: '', stderr: '', truncated: false },
    warnings: step.warnings ?? [],
    timings: { enqueuedAt: 0, startedAt: 0, finishedAt: 0, queueWaitMs: 0, executionMs: 0 },
    workerId: 'fixture-worker',
  };
}

function eventFor(state: RunState, step: FixtureStep, at: number, previous: EngineEvent | undefined): EngineEvent {
  if (step.replay_last) {
    if (!previous) throw new Error('replay_last needs a previous step');
    return previous;
  }
  if (step.finish !== undefined) return { type: 'node_finished', result: resultFor(state, step, step.finish), at };
  if (step.start !== undefined) {
    const attempt = step.attempt ?? state.nodes[step.start]?.attempts ?? 0;
    return { type: 'node_started', nodeId: step.start, executionId: executionIdOf(state.id, step.start, attempt), at };
  }
  if (step.cancel !== undefined) return { type: 'cancel', at, ...(typeof step.cancel === 'string' ? { reason: step.cancel } : {}) };
  if (step.timeout) return { type: 'run_timeout', at: step.at ?? state.deadlineAt ?? at };
  throw new Error(`fixture step has no action: ${JSON.stringify(step)}`);
}

/** Creates the run, starts it at t=0, then applies every scripted step; returns the full trace. */
export async function runFixture(fixture: Fixture): Promise<TraceEntry[]> {
  const workflow = parseWorkflow(fixture.workflow);
  let state = createRunState({ id: 'run-1', tenantId: 'tenant-1', workflow, inputs: fixture.inputs ?? {}, now: 0 });
  const trace: TraceEntry[] = [];
  const apply = async (step: TraceEntry['step'], event: EngineEvent): Promise<void> => {
    const before = structuredClone(state);
    const { state: after, commands } = await transition(state, event);
    trace.push({ step, event, input: state, before, after, commands });
    state = after;
  };
  await apply({ start_run: true }, { type: 'start', at: 0 });
  let previous: EngineEvent | undefined;
  for (const [index, step] of (fixture.script ?? []).entries()) {
    const event = eventFor(state, step, step.at ?? (index + 1) * 1_000, previous);
    await apply(step, event);
    previous = event;
  }
  return trace;
}

export function enqueuesOf(commands: EngineCommand[]): Extract<EngineCommand, { type: 'enqueue' }>[] {
  return commands.filter((command): command is Extract<EngineCommand, { type: 'enqueue' }> => command.type === 'enqueue');
}

export function cancelsOf(commands: EngineCommand[]): Extract<EngineCommand, { type: 'cancel_execution' }>[] {
  return commands.filter((command): command is Extract<EngineCommand, { type: 'cancel_execution' }> => command.type === 'cancel_execution');
}
