import type { ExecJob, ExecResult, JsonObject, Language, NodeError, NodeFiles, NodePhase, PayloadRef, Resources, RunEventMessage, RunPhase } from '@podflow/protocol';

/** Edge kinds (DESIGN.md "Workflow definition"). */
export type EdgeOn = 'success' | 'failure' | 'always';

export type OutputType = 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array' | 'null' | 'any';

export interface RetryPolicySpec {
  max: number;
  backoff: 'fixed' | 'exponential';
  /** Milliseconds before the first retry. */
  delayMs: number;
}

/** A Code node after parsing and normalisation (durations in ms, defaults applied). */
/** A declared input type: a name of the `outputs` vocabulary, or a JSON Schema. */
export type InputType = OutputType | JsonObject;

export interface CodeNode {
  id: string;
  type: 'code';
  language: Language;
  code: string;
  /** Binding name → JSONata expression. When present, `args` is exactly the bound object. */
  inputs?: Record<string, string>;
  /**
   * Binding name → the JSON type its value must have (same vocabulary as `outputs`), or a JSON
   * Schema (an object; json-schema.ts). Checked when the node is dispatched: a mismatch is
   * INPUT_BINDING_FAILED before any sandbox starts.
   */
  inputTypes?: Record<string, InputType>;
  /** Canonical specs (dependencies.ts), in declaration order: what the installer is given. */
  dependencies: string[];
  timeoutMs: number;
  retries: RetryPolicySpec;
  resources?: Resources;
  /** Declared outputs (name → type): validated; undeclared keys are kept and warned about. */
  outputs?: Record<string, OutputType>;
  network: boolean;
  /**
   * Not part of the definition format (parseWorkflow never sets it): set by the coordinator on the
   * one node of an agent tool call, whose main may return any JSON value (ExecJob `returnAny`).
   */
  returnAny?: boolean;
}

export interface Edge {
  from: string;
  to: string;
  on: EdgeOn;
  /** JSONata condition; the edge fires only if it is truthy. */
  when?: string;
}

/** A validated, normalised workflow definition. Immutable once registered. */
export interface Workflow {
  id: string;
  name?: string;
  description?: string;
  nodes: CodeNode[];
  edges: Edge[];
  /** JSONata expression for the run's `outputs`. */
  output?: string;
  /** Whole-run timeout in ms. */
  timeoutMs: number;
}

/** Limits and defaults applied at validation; services take them from their config. */
export interface WorkflowLimits {
  maxNodes: number;
  maxCodeBytes: number;
  defaultNodeTimeoutMs: number;
  maxNodeTimeoutMs: number;
  defaultRunTimeoutMs: number;
  maxRunTimeoutMs: number;
  maxRetries: number;
}

export const DEFAULT_WORKFLOW_LIMITS: WorkflowLimits = {
  maxNodes: 10_000,
  maxCodeBytes: 256 * 1024,
  defaultNodeTimeoutMs: 60_000,
  maxNodeTimeoutMs: 3_600_000,
  defaultRunTimeoutMs: 3_600_000,
  maxRunTimeoutMs: 24 * 3_600_000,
  maxRetries: 10,
};

/** One problem found in a definition: where it is, and what to do about it. */
export interface ValidationIssue {
  /** Dotted path into the definition, e.g. `nodes[2].code` or `edges[0].to`. */
  path: string;
  /** Node or edge the issue belongs to, e.g. `node "report"` or `edge load→report`. */
  where?: string;
  message: string;
  /** Set on dependency issues; a definition whose only issues are these is rejected with this code. */
  code?: 'INVALID_DEPENDENCY';
}

export type EdgeResolution = 'pending' | 'fired' | 'not_fired';

export interface NodeTimings {
  queuedAt?: number;
  startedAt?: number;
  finishedAt?: number;
}

export interface NodeState {
  status: NodePhase;
  /** Attempts started so far (the current one included). */
  attempts: number;
  /** Execution the node is waiting on; results for any other execution are stale and ignored. */
  executionId?: string;
  output?: JsonObject;
  /**
   * Where `output` is stored when it is too large to keep in the run state. Set from the result
   * beside `output`, cleared with it; the engine never reads it. The coordinator stores the state
   * without `output` when this is set, and puts `output` back before a transition or an API read.
   */
  outputRef?: PayloadRef;
  files?: NodeFiles;
  error?: NodeError;
  logs?: ExecResult['logs'];
  warnings?: string[];
  timings: NodeTimings;
  /** Set on a node a run started with as succeeded: the run that produced its result, or `sample` (a value given to a test run). */
  keptFrom?: string;
}

/** The whole state of one run; stored as one JSON document per run. */
export interface RunState {
  id: string;
  tenantId: string;
  workflow: Workflow;
  /** Registered workflow version, when the run was started from one. */
  workflowVersion?: number;
  /** The run this one resumes (`POST /v1/runs/:id/resume`): the nodes it kept carry `keptFrom`. */
  resumedFrom?: string;
  /** How many nodes the run started with as succeeded (kept: resume, or a test run's upstream). */
  kept?: number;
  /** Set on a test run of one node (`POST /v1/workflows/:id/nodes/:nodeId/test`): kept apart from production runs. */
  test?: { nodeId: string; upstreamFrom?: string };
  /**
   * Set on an agent tool call's run (its tool's name: `execute-python`, ...). Its workflow id is
   * the tool's name, which a tenant may also give a workflow of its own: a tool call's run is never
   * that workflow's latest succeeded run, nor a `fromRun` of its test runs.
   */
  tool?: string;
  inputs: JsonObject;
  status: RunPhase;
  nodes: Record<string, NodeState>;
  /** Index-aligned with `workflow.edges`. */
  edges: EdgeResolution[];
  outputs?: JsonObject;
  /** Where `outputs` is stored when too large to keep inline (kept by the coordinator, like `NodeState.outputRef`). */
  outputsRef?: PayloadRef;
  error?: NodeError;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** Epoch ms after which the run fails with RUN_TIMEOUT. */
  deadlineAt?: number;
}

/** Everything that can happen to a run. */
export type EngineEvent =
  | { type: 'start'; at: number }
  | { type: 'node_started'; nodeId: string; executionId: string; at: number }
  | { type: 'node_finished'; result: ExecResult; at: number }
  | { type: 'cancel'; at: number; reason?: string }
  | { type: 'run_timeout'; at: number }
  /** Resolves the next page of a node's outgoing edges (a wide fan-out: `TransitionOptions.edgePage`); the commit that left them wrote it. */
  | { type: 'resolve_edges'; nodeId: string; at: number }
  /** Starts the next page of a run's roots (more roots than `TransitionOptions.edgePage`); the commit that left them wrote it. */
  | { type: 'start_roots'; at: number }
  /**
   * Cancels the next page of an ending run's nodes (`RunRecord.ending`); the commit that left them
   * wrote it. `from`: where that page starts; only the one at the run record's cursor applies (a
   * late or repeated one changes nothing), and a store prefetches that page.
   */
  | { type: 'end_run'; from: number; at: number }
  /**
   * The service cannot apply an event to this run (a result it cannot process): the run fails with
   * `error` instead of waiting for its timeout. On an ending run it asks for the end's next page
   * again; `endPage`: that event was the page of the run's own end starting there (the `from` of an
   * `end_run`), which is skipped rather than tried forever.
   */
  | { type: 'fail'; at: number; error: NodeError; endPage?: number };

/** What the service must carry out after a transition (the engine itself does no I/O). */
export type EngineCommand =
  /** Put the job on `exec` (job id = executionId), after `delayMs` (retry backoff). */
  | { type: 'enqueue'; job: ExecJob; delayMs: number }
  /** Kill a queued or running execution. */
  | { type: 'cancel_execution'; nodeId: string; executionId: string }
  /** Deliver `{ type: 'run_timeout' }` at `at`. */
  | { type: 'schedule_run_timeout'; at: number }
  /** Append to the run's event stream. */
  | { type: 'emit'; event: RunEventMessage }
  /**
   * Apply `{ type: 'resolve_edges', nodeId, at }` to this run next: the node has outgoing edges
   * left to resolve (`TransitionOptions.edgePage`). A store writes it to the run's own inbox in the
   * same atomic step as the changes, so the rest of a fan-out is neither lost nor resolved twice.
   */
  | { type: 'resolve_edges'; nodeId: string; at: number }
  /** Apply `{ type: 'start_roots', at }` to this run next: it has roots left to start; written like `resolve_edges`. */
  | { type: 'start_roots'; at: number }
  /** Apply `{ type: 'end_run', from, at }` to this run next: it is ending with nodes left to cancel; written like `resolve_edges`. */
  | { type: 'end_run'; from: number; at: number };

export interface TransitionResult {
  state: RunState;
  commands: EngineCommand[];
}

/**
 * The run-level part of a run's state, stored apart from its nodes: what every transition reads.
 * The definition is referenced by `workflowHash`, never copied; inputs are stored beside it and
 * read only by transitions that evaluate something.
 */
export interface RunRecord extends Omit<RunState, 'workflow' | 'inputs' | 'nodes' | 'edges'> {
  workflowId: string;
  /** Content hash of the definition (empty for runs held whole in memory, as the fixtures do). */
  workflowHash: string;
  /** Nodes still pending, queued or running: the run completes when this reaches 0. */
  open: number;
  /**
   * A run with more roots than a step starts (`TransitionOptions.edgePage`): how many of them, in
   * definition order, are started so far. Gone once all are.
   */
  rootsStarted?: number;
  /**
   * A run ending (cancel, failure, timeout) with more nodes than a step cancels
   * (`TransitionOptions.edgePage`): the status and errors it ends with, and `next`, the position
   * (in `compiled.nodeIds`) of the first node not looked at yet. Every other event waits out the
   * end as it would after it: ignored. Gone once the run has its terminal status.
   */
  ending?: RunEnding;
}

/** How a run is ending, while its nodes are canceled a page per step (`RunRecord.ending`). */
export interface RunEnding {
  status: 'failed' | 'canceled';
  error: NodeError;
  /** The error each canceled node gets (its `nodeId` added). */
  nodeError: NodeError;
  next: number;
}

/** One node's state plus the counters that make readiness O(1): no scan of incoming edges. */
export interface NodeRecord extends NodeState {
  /** Incoming edges not resolved yet; the node is ready at 0. */
  waiting: number;
  /** Incoming edges that fired; a ready node with none is skipped (roots excepted). */
  fired: number;
  /**
   * A succeeded node with more outgoing edges than a step resolves (`TransitionOptions.edgePage`):
   * how many of them (in `compiled.outgoing` order) are resolved so far. Gone once all are.
   */
  edgesResolved?: number;
}

/**
 * Where a transition reads the records it needs beyond the run record. The engine asks only for
 * what an event touches (the node, its successors, what an expression or `args` reads), so a
 * store can answer from Redis with one round trip per call. Records handed out are not mutated.
 * A node or edge the source has no record of is one nothing has touched yet: the engine takes its
 * node as `pendingRecord` and its edge as `pending` (a store need not write them at creation).
 */
export interface RunSource {
  nodes(ids: readonly string[]): Promise<ReadonlyMap<string, NodeRecord>>;
  edges(indexes: readonly number[]): Promise<ReadonlyMap<number, EdgeResolution>>;
  inputs(): Promise<JsonObject>;
}

/** What a batch of events changed: only these records must be written back, with the commands, in one atomic step. */
export interface RunChanges {
  run: RunRecord;
  runChanged: boolean;
  nodes: Map<string, NodeRecord>;
  edges: Map<number, EdgeResolution>;
  commands: EngineCommand[];
}
