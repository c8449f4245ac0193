import { MAX_JSON_DEPTH, PodflowError, emptyRecord, ownValue } from '@podflow/protocol';
import type { JsonObject, JsonValue, NodeError, NodeFiles, NodePhase } from '@podflow/protocol';
import { CONCAT_FUNCTION, installBoundedBuiltins } from './expression-builtins';
import type { Expression } from 'jsonata';
import { PODFLOW_CODES, WALK_LIMIT, jsonata } from './jsonata-patched';
import { DEFAULT_EXPRESSION_LIMITS, ExpressionBudget, ExpressionLimitError, maxItemsOf, type ExpressionLimits } from './expression-budget';
import { MAX_PATTERN_LENGTH, WORK_PER_MS, regexEngine, unsupportedRegex } from './regex-engine';
import type { RunState } from './types';

/** What one node looks like to expressions: `nodes.<id>.output`, `.files`, `.status`, `.error`. */
export interface NodeView {
  status: NodePhase;
  output?: JsonObject;
  files?: NodeFiles;
  error?: NodeError;
}

/** The document every JSONata expression is evaluated against (DESIGN.md "Workflow definition"). */
export interface ExpressionContext {
  inputs: JsonObject;
  nodes: Record<string, NodeView>;
  run: { id: string; tenant: string };
}

/**
 * Expressions are user text evaluated inside the coordinator, so each evaluation is bounded in
 * time, depth and size (ExpressionLimits), and a limit ends it with INPUT_BINDING_FAILED naming
 * the limit instead of stalling or exhausting the process. How:
 * - Time and depth: JSONata's own `timeout` and `stack` guardrails, checked at every step.
 * - Sequences: JSONata's `sequence` option caps every array it builds (ranges, paths, appends)
 *   at `maxBytes / 8` items before allocating it.
 * - Every value a step builds (function results, operators, array and object constructors,
 *   transforms, sorts, group-bys) is measured as JSON when the step ends, through JSONata's
 *   evaluate-exit hook: over `maxBytes` it fails, and new bytes add up to a per-evaluation total.
 *   Sizes are remembered per object, so a value built by repeatedly sharing one part
 *   (`{"a": $x, "b": $x}`) is caught in O(its keys), and strings are measured by length, so
 *   doubling one with `&` is caught without ever flattening it.
 * - What a single step builds before any hook runs is checked beforehand: built-ins that can
 *   amplify (`$pad`, `$join`, `$string`, `$replace`, `$split`, `$match`, pictures, ...) are
 *   replaced by bounded versions (expression-builtins.ts), and `&`, which stringifies objects,
 *   is rewritten into a call that measures its operands first.
 * - Regular expressions run on RE2 (regex-engine.ts), in time linear in the text: each match
 *   attempt is bounded in work (program size × characters) and checks the time limit, so no
 *   pattern backtracks for minutes inside one step. RE2 has no backreferences or lookaround;
 *   such patterns are refused when the definition is validated.
 * Expressions are compiled per evaluation (microseconds) so these hooks hold that evaluation's
 * budget; `compileExpression` keeps a cache for syntax checks only.
 */
export { DEFAULT_EXPRESSION_LIMITS };
export type { ExpressionLimits };

/** JSONata calls this after each evaluation step with its result (jsonata 2.x). */
const EXIT_HOOK = Symbol.for('jsonata.__evaluate_exit');

/** AST node types whose result is a value the step built, rather than one read from the context. */
const BUILDING_NODES = new Set(['function', 'partial', 'binary', 'unary', 'apply', 'transform', 'sort']);

/**
 * Longest expression accepted (characters). A parsed expression takes tens of times its text in
 * memory and about a second of CPU per megabyte to parse, in the coordinator: bounded like any
 * other user input, with a 400 that says so.
 */
export const MAX_EXPRESSION_CHARS = 16_384;

/**
 * Compiled expressions by source text. Bounded in entries and in their total text (a parsed
 * expression takes tens of times its text) because a long-lived coordinator sees the expressions
 * of every workflow ever submitted, valid or not; Map iteration order gives FIFO eviction.
 */
const MAX_CACHED = 2_000;
const MAX_CACHED_CHARS = 1_000_000;
const compiled = new Map<string, Expression>();
let cachedChars = 0;

function isJsonataError(error: unknown): error is { message: string; position?: number; code?: string; token?: string } {
  return typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string';
}

/**
 * Compiles (or fetches from the cache) one expression.
 * @throws the JSONata syntax error (with `position` and `message`) when it does not parse.
 */
export function compileExpression(expression: string): Expression {
  const cached = compiled.get(expression);
  if (cached) return cached;
  const parsed = jsonata(expression);
  while (compiled.size > 0 && (compiled.size >= MAX_CACHED || cachedChars + expression.length > MAX_CACHED_CHARS)) {
    const oldest = compiled.keys().next().value!;
    compiled.delete(oldest);
    cachedChars -= oldest.length;
  }
  compiled.set(expression, parsed);
  cachedChars += expression.length;
  return parsed;
}

/**
 * Answers of expressionSyntaxError during one withSyntaxMemo: each distinct text is parsed once
 * per validation. The compile cache alone does not ensure that (2,000 entries, oldest out first):
 * a definition cycling through more distinct texts than it holds was parsed at every occurrence,
 * 14.5 s for 200,000 bindings over 2,500 texts (a review finding on the expression counts).
 */
let syntaxMemo: Map<string, string | undefined> | undefined;

/** Runs `check` (synchronous: a schema's safeParse) with expressionSyntaxError memoised per text. */
export function withSyntaxMemo<T>(check: () => T): T {
  const outer = syntaxMemo;
  syntaxMemo = new Map();
  try {
    return check();
  } finally {
    syntaxMemo = outer;
  }
}

/** Why an expression does not parse (`syntax error at position 7: ...`), or undefined if it does. */
export function expressionSyntaxError(expression: string): string | undefined {
  if (syntaxMemo?.has(expression)) return syntaxMemo.get(expression);
  const problem = syntaxErrorOf(expression);
  syntaxMemo?.set(expression, problem);
  return problem;
}

function syntaxErrorOf(expression: string): string | undefined {
  if (expression.trim() === '') return 'is empty: write a JSONata expression such as nodes.load.output.rows';
  if (expression.length > MAX_EXPRESSION_CHARS) return tooLong(expression);
  try {
    const ast = compileExpression(expression).ast();
    const problem = unsupportedRegexIn(ast) ?? cloneBoundIn(ast);
    return problem ? `${problem} (in ${JSON.stringify(expression.slice(0, 200))})` : undefined;
  } catch (error) {
    if (!isJsonataError(error)) return `does not parse: ${String(error)}`;
    const at = typeof error.position === 'number' ? ` at position ${error.position}` : '';
    return `JSONata syntax error${at}: ${error.message} (in ${JSON.stringify(expression)})`;
  }
}

function tooLong(expression: string): string {
  return `is ${expression.length} characters long; an expression may have at most ${MAX_EXPRESSION_CHARS}: compute large values in a node instead`;
}

/**
 * Where a parsed expression binds the variable `$clone` (`$clone := ...`, a function parameter,
 * `@$clone` or `#$clone` in a path), or undefined. JSONata's transform operator
 * (`~> |path|update|`) copies its input with whatever `$clone` names in scope, so a rebound one
 * would make it change the run's records in place instead of a copy.
 */
function cloneBoundIn(ast: unknown, seen = new Set<object>()): string | undefined {
  if (typeof ast !== 'object' || ast === null || seen.has(ast)) return undefined;
  seen.add(ast);
  const node = ast as { type?: unknown; lhs?: { type?: unknown; value?: unknown }; arguments?: unknown; focus?: unknown; index?: unknown; position?: unknown };
  const binds =
    (node.type === 'bind' && node.lhs?.type === 'variable' && node.lhs.value === 'clone') ||
    (node.type === 'lambda' && Array.isArray(node.arguments) && node.arguments.some((arg) => (arg as { value?: unknown })?.value === 'clone')) ||
    node.focus === 'clone' ||
    node.index === 'clone';
  if (binds) {
    const at = typeof node.position === 'number' ? ` at position ${node.position}` : '';
    return `binds the variable $clone${at}, which the transform operator (~> |...|) uses to copy its input; give the variable another name`;
  }
  for (const child of Object.values(ast)) {
    const problem = cloneBoundIn(child, seen);
    if (problem) return problem;
  }
  return undefined;
}

/** Why RE2 cannot run a regular expression literal of a parsed expression, or undefined when it can run all. */
function unsupportedRegexIn(ast: unknown, seen = new Set<object>()): string | undefined {
  if (typeof ast !== 'object' || ast === null || seen.has(ast)) return undefined;
  seen.add(ast);
  const node = ast as { type?: unknown; value?: unknown };
  if (node.type === 'regex' && node.value instanceof RegExp) return unsupportedRegex(node.value);
  for (const child of Object.values(ast)) {
    const problem = unsupportedRegexIn(child, seen);
    if (problem) return problem;
  }
  return undefined;
}

/**
 * The expression context of a run as it stands. Only present fields are set, so absent reads as
 * undefined. Values are copies: JSONata writes onto values it is given (`x[]`, calling an object).
 */
export function buildExpressionContext(state: RunState): ExpressionContext {
  // Without a prototype, `nodes.constructor` or `nodes.__proto__` is a node id like any other.
  const nodes = emptyRecord<NodeView>();
  for (const [id, node] of Object.entries(state.nodes)) {
    const view: NodeView = { status: node.status };
    if (node.output !== undefined) view.output = structuredClone(node.output);
    if (node.files !== undefined) view.files = structuredClone(node.files);
    if (node.error !== undefined) view.error = structuredClone(node.error);
    nodes[id] = view;
  }
  return { inputs: structuredClone(state.inputs), nodes, run: { id: state.id, tenant: state.tenantId } };
}

/**
 * Evaluates an expression against a context and returns plain JSON (a fresh copy: results never
 * alias the run state). An absent result is `undefined`.
 * @param origin names where the expression came from, e.g. `input binding "rows" of node "report"`.
 * @throws PodflowError `INPUT_BINDING_FAILED` naming the origin, the expression and, for a limit, the limit.
 */
export async function evaluateExpression(
  expression: string,
  context: ExpressionContext,
  origin = 'expression',
  limits: ExpressionLimits = DEFAULT_EXPRESSION_LIMITS,
): Promise<JsonValue | undefined> {
  const budget = new ExpressionBudget(limits);
  let value: unknown;
  try {
    const RegexEngine = regexEngine({
      maxWork: limits.timeoutMs * WORK_PER_MS,
      checkTime: (what) => budget.checkTime(what),
      tooMuchWork: (message) => new ExpressionLimitError(message),
    });
    // Checked when the definition is validated; again here for definitions stored before these rules.
    if (expression.length > MAX_EXPRESSION_CHARS) throw new Error(tooLong(expression));
    const compiled = jsonata(expression, { timeout: limits.timeoutMs, stack: limits.maxDepth, sequence: maxItemsOf(limits), RegexEngine });
    const rebound = cloneBoundIn(compiled.ast());
    if (rebound) throw new Error(rebound);
    rewriteConcatenation(compiled.ast());
    await installBoundedBuiltins(compiled, budget);
    compiled.assign(EXIT_HOOK as unknown as string, (node: { type: string; value?: unknown; position?: number; group?: unknown }, _input: unknown, _environment: unknown, result: unknown) => {
      if (result === undefined || result === null || !(BUILDING_NODES.has(node.type) || node.group)) return;
      if ((result as { tupleStream?: boolean }).tupleStream) return;
      budget.checkBuilt(result, () => describeNode(node));
    });
    value = await compiled.evaluate(context);
  } catch (error) {
    throw bindingFailure(expression, origin, error, limits);
  }
  try {
    budget.require(budget.sizeOf(value), 'the result');
    return toJson(value, '');
  } catch (error) {
    if (error instanceof ExpressionLimitError) throw bindingFailure(expression, origin, error, limits);
    throw new PodflowError('INPUT_BINDING_FAILED', `${origin}: expression ${JSON.stringify(expression)} ${(error as Error).message}`, { origin, expression });
  }
}

function bindingFailure(expression: string, origin: string, error: unknown, limits: ExpressionLimits): PodflowError {
  const detail = isJsonataError(error) ? error.message : String(error);
  const at = isJsonataError(error) && typeof error.position === 'number' ? ` at position ${error.position}` : '';
  const code = isJsonataError(error) ? error.code : undefined;
  const limit = code ? ownValue(LIMIT_HINTS, code) : undefined;
  const hint = limit ? ` (${limit(limits)})` : '';
  return new PodflowError('INPUT_BINDING_FAILED', `${origin}: expression ${JSON.stringify(expression)} failed${at}: ${detail}${hint}`, {
    origin,
    expression,
    ...(code ? { jsonataCode: code } : {}),
    ...(error instanceof ExpressionLimitError || limit ? { limit: true } : {}),
  });
}

/** JSONata's own limit errors, with the setting behind each. */
const LIMIT_HINTS: Partial<Record<string, (limits: ExpressionLimits) => string>> = {
  D1011: (l) => `the limit is ${l.maxDepth} nested evaluation steps`,
  D1012: (l) => `the limit is EXPRESSION_TIMEOUT_MS=${l.timeoutMs}`,
  D2014: () => 'JSONata allows at most 1e7 items in a range',
  D2015: (l) => `the limit is ${maxItemsOf(l)} items per sequence, EXPRESSION_MAX_BYTES / 8`,
  // podflow's own (jsonata-patched.ts): each binding is an object of a few hundred bytes.
  [PODFLOW_CODES.bindings]: (l) => `the limit is ${Math.floor(maxItemsOf(l) / 8)} bindings per path, EXPRESSION_MAX_BYTES / 64`,
  [PODFLOW_CODES.walk]: () => `the limit is ${WALK_LIMIT} values per truth test or comparison`,
  [PODFLOW_CODES.picture]: () => `RE2 takes patterns of at most ${MAX_PATTERN_LENGTH} characters`,
};

function describeNode(node: { type: string; value?: unknown; position?: number; procedure?: { value?: unknown } }): string {
  const at = typeof node.position === 'number' ? ` (at position ${node.position})` : '';
  if (node.type === 'function' && node.procedure?.value === CONCAT_FUNCTION) return `the & operator${at}`;
  if (node.type === 'function' || node.type === 'partial') return `$${String(node.procedure?.value ?? 'function')}()${at}`;
  if (node.type === 'unary' && node.value === '[') return `an array constructor${at}`;
  if (node.type === 'unary' && node.value === '{') return `an object constructor${at}`;
  if (node.type === 'binary') return `the ${String(node.value)} operator${at}`;
  return `a ${node.type} expression${at}`;
}

/**
 * Turns every `a & b` of a parsed expression into `$__podflow_concat(a, b)` in place: JSONata's
 * `&` stringifies object operands within one step, and the replacement measures them first.
 */
function rewriteConcatenation(ast: unknown, seen = new Set<object>()): void {
  if (typeof ast !== 'object' || ast === null || seen.has(ast)) return;
  seen.add(ast);
  const node = ast as Record<string, unknown>;
  if (node.type === 'binary' && node.value === '&') {
    node.type = 'function';
    node.value = '(';
    node.arguments = [node.lhs, node.rhs];
    node.procedure = { type: 'variable', value: CONCAT_FUNCTION, position: node.position };
    delete node.lhs;
    delete node.rhs;
  }
  for (const child of Object.values(node)) rewriteConcatenation(child, seen);
}

/**
 * Truthiness of a `when` result, following JSONata's `$boolean`: undefined, null, false, 0, '',
 * empty arrays, arrays of falsy values, empty objects and functions are false.
 */
export function isTruthy(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (Array.isArray(value)) return value.some(isTruthy);
  switch (typeof value) {
    case 'boolean':
      return value;
    case 'string':
      return value.length > 0;
    case 'number':
      return value !== 0 && !Number.isNaN(value);
    case 'object':
      return !isLambda(value) && Object.keys(value).length > 0;
    default:
      return false;
  }
}

function isLambda(value: object): boolean {
  const marked = value as { _jsonata_lambda?: unknown; _jsonata_function?: unknown };
  return marked._jsonata_lambda === true || marked._jsonata_function === true;
}

/**
 * Deep-copies a JSONata result into JSON, dropping absent values; rejects what JSON cannot hold,
 * and values nested deeper than MAX_JSON_DEPTH: an expression can build any depth in a loop
 * (`$reduce` wrapping an object 3000 times), and deeper data broke JSON.stringify in the
 * coordinator and the runners' parsers downstream.
 */
function toJson(value: unknown, path: string, depth = 0): JsonValue | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'object' && value !== null && !isLambda(value) && depth >= MAX_JSON_DEPTH) {
    const at = path.length > 80 ? `${path.slice(0, 80)}…` : path;
    throw new ExpressionLimitError(
      `yields a value nested deeper than ${MAX_JSON_DEPTH} levels of objects and arrays (at ${at || 'the top'}), the most a value may nest (MAX_JSON_DEPTH); flatten it, or pass it as a string`,
    );
  }
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`yields a non-finite number${where(path)}, which is not JSON`);
    return value;
  }
  if (Array.isArray(value)) {
    const items: JsonValue[] = [];
    value.forEach((item, index) => {
      const converted = toJson(item, `${path}[${index}]`, depth + 1);
      if (converted !== undefined) items.push(converted);
    });
    return items;
  }
  if (typeof value === 'object' && !isLambda(value) && isPlainObject(value)) {
    // Prototype-free, so a `__proto__` key in the data stays a key.
    const out = emptyRecord<JsonValue>();
    for (const [key, item] of Object.entries(value)) {
      const converted = toJson(item, path ? `${path}.${key}` : key, depth + 1);
      if (converted !== undefined) out[key] = converted;
    }
    return out;
  }
  throw new Error(`yields a function or another non-JSON value${where(path)}; return data, not functions`);
}

/** No prototype, or a realm's Object.prototype (state cloned by `structuredClone` may come from another realm). */
function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

function where(path: string): string {
  return path ? ` at ${path}` : '';
}
