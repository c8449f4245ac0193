/**
 * @podflow/workflow: the pure core of podflow. Definition schema and validation, JSONata
 * expressions, and the run state machine (state + event → new state + commands). No I/O here:
 * the coordinator compiles a definition once (`CompiledWorkflow`), applies batches of events to a
 * run's records with `applyEvents` (reading only what they touch through a `RunSource`), writes
 * the changed records atomically and carries out the commands. `transition` is the same engine
 * over one whole `RunState`, for tests and embedded use.
 *
 * ```ts
 * import { parseWorkflow, createRunState, transition } from '@podflow/workflow';
 *
 * const workflow = parseWorkflow(yamlText);                  // throws InvalidWorkflowError
 * let state = createRunState({ id: 'run-1', tenantId: 't1', workflow, inputs: {}, now: Date.now() });
 * const { state: next, commands } = await transition(state, { type: 'start', at: Date.now() });
 * // Expression bounds (size, time, depth) default to DEFAULT_EXPRESSION_LIMITS:
 * await transition(next, event, { expressionLimits: { ...DEFAULT_EXPRESSION_LIMITS, maxBytes: 1 << 20 } });
 * for (const command of commands) {
 *   // enqueue | cancel_execution | schedule_run_timeout | emit
 * }
 *
 * // Declared packages: validated at submit, canonical specs for the installer and the layer key.
 * const specs = normaliseDependencies('python', [' Python_Dateutil >= 2.8 , <3']); // ['python-dateutil<3,>=2.8']
 * parseWorkflow(definition, limits, { dependencyPolicies: [{ label: 'operator', deny: ['*:left-pad'] }] });
 * ```
 */
export { DEFAULT_WORKFLOW_LIMITS } from './types';
export type {
  CodeNode,
  Edge,
  EdgeOn,
  EdgeResolution,
  EngineCommand,
  EngineEvent,
  NodeRecord,
  NodeState,
  NodeTimings,
  InputType,
  OutputType,
  RetryPolicySpec,
  RunChanges,
  RunEnding,
  RunRecord,
  RunSource,
  RunState,
  TransitionResult,
  ValidationIssue,
  Workflow,
  WorkflowLimits,
} from './types';
export { InvalidWorkflowError, formatIssue } from './errors';
export { parseWorkflow, validateWorkflow, dependencyPolicyIssues, formatPath } from './validate';
export { MAX_BINDINGS_PER_NODE, MAX_DISTINCT_EXPRESSIONS, MAX_EXPRESSION_TEXT_CHARS } from './expression-volume';
export { MAX_DEFINITION_TOKENS, loadDefinitionText } from './definition-source';
export type { LoadedSource } from './definition-source';
export type { ValidateOptions, ValidationResult } from './validate';
export {
  InvalidDependencyError,
  MAX_DEPENDENCY_SPEC_LENGTH,
  ecosystemOf,
  normaliseDependencies,
  parseDependencies,
  parseDependency,
} from './dependencies';
export type {
  DependencyEcosystem,
  DependencyParseResult,
  DependencyProblem,
  DependencyProblemKind,
  ParsedDependencies,
  ParsedDependency,
} from './dependencies';
export { checkDependencyPolicy, parseDependencyPolicyEntry } from './dependency-policy';
export type { DependencyPolicy, DependencyPolicyEntry } from './dependency-policy';
export { NODE_ID_PATTERN, OUTPUT_TYPES, WORKFLOW_ID_PATTERN } from './schema';
export { DURATION_HINT, formatDuration, parseDuration } from './durations';
export { DEFAULT_EXPRESSION_LIMITS, buildExpressionContext, evaluateExpression, expressionSyntaxError, isTruthy } from './expressions';
export type { ExpressionContext, ExpressionLimits, NodeView } from './expressions';
export { applyEvents, createRunRecords, createRunState, nodesTouchedBy, transition } from './engine';
export { isLiveRun, pendingRecord } from './engine-context';
export { CompiledWorkflow } from './compiled-workflow';
export { nodeReadsOf } from './expression-reads';
export type { NodeReads } from './expression-reads';
export { memorySource, mergeChanges, nodeRecordsOf, nodeStateOf, runRecordOf } from './run-records';
export type { CreateRunParams, KeptParams, TransitionOptions } from './engine';
export { testRunDefinition, type TestRunInfo } from './test-run';
export { keptNodes, type KeptNode } from './resume';
export { MAX_RETRY_DELAY_MS, retriesAllowed, retryDelayMs } from './engine-results';
export { checkOutput } from './outputs';
export { JSON_SCHEMA_MAX_BYTES, compileJsonSchema, schemaMismatch } from './json-schema';
export type { OutputCheck } from './outputs';
