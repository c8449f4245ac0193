import jsonata from 'jsonata';
import { PodflowError } from '@podflow/protocol';
import type { JsonObject, JsonValue, NodeError, NodeFiles, NodePhase } from '@podflow/protocol';
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
 * Guardrails: expressions are user text evaluated inside the coordinator, so an accidental
 * infinite recursion or a huge loop must end with an error instead of stalling every run.
 */
const GUARDRAILS: jsonata.JsonataOptions = { timeout: 1_000, stack: 500 };

/**
 * Compiled expressions by source text. Bounded because a long-lived coordinator sees the
 * expressions of every workflow ever submitted; Map iteration order gives us FIFO eviction.
 */
const MAX_CACHED = 2_000;
const compiled = new Map<string, jsonata.Expression>();

function isJsonataError(error: unknown): error is { message: string; position?: number; code?: string; token?: string } {
  return typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string';
}

/**
 * Compiles (or fetches from the cache) one expression.
 * @throws the JSONata syntax error (with `position` and `message`) when it does not parse.
 */
export function compileExpression(expression: string): jsonata.Expression {
  const cached = compiled.get(expression);
  if (cached) return cached;
  const parsed = jsonata(expression, GUARDRAILS);
  if (compiled.size >= MAX_CACHED) {
    const oldest = compiled.keys().next().value;
    if (oldest !== undefined) compiled.delete(oldest);
  }
  compiled.set(expression, parsed);
  return parsed;
}

/** Why an expression does not parse (`syntax error at position 7: ...`), or undefined if it does. */
export function expressionSyntaxError(expression: string): string | undefined {
  if (expression.trim() === '') return 'is empty: write a JSONata expression such as nodes.load.output.rows';
  try {
    compileExpression(expression);
    return undefined;
  } catch (error) {
    if (!isJsonataError(error)) return `does not parse: ${String(error)}`;
    const at = typeof error.position === 'number' ? ` at position ${error.position}` : '';
    return `JSONata syntax error${at}: ${error.message} (in ${JSON.stringify(expression)})`;
  }
}

/** The expression context of a run as it stands. Only present fields are set, so absent reads as undefined. */
export function buildExpressionContext(state: RunState): ExpressionContext {
  const nodes: Record<string, NodeView> = {};
  for (const [id, node] of Object.entries(state.nodes)) {
    const view: NodeView = { status: node.status };
    if (node.output !== undefined) view.output = node.output;
    if (node.files !== undefined) view.files = node.files;
    if (node.error !== undefined) view.error = node.error;
    nodes[id] = view;
  }
  return { inputs: state.inputs, nodes, run: { id: state.id, tenant: state.tenantId } };
}

/**
 * Evaluates an expression against a context and returns plain JSON (a fresh copy: results never
 * alias the run state). An absent result is `undefined`.
 * @param origin names where the expression came from, e.g. `input binding "rows" of node "report"`.
 * @throws PodflowError `INPUT_BINDING_FAILED` naming the origin and the expression.
 */
export async function evaluateExpression(expression: string, context: ExpressionContext, origin = 'expression'): Promise<JsonValue | undefined> {
  let value: unknown;
  try {
    value = await compileExpression(expression).evaluate(context);
  } catch (error) {
    const detail = isJsonataError(error) ? error.message : String(error);
    const at = isJsonataError(error) && typeof error.position === 'number' ? ` at position ${error.position}` : '';
    throw new PodflowError('INPUT_BINDING_FAILED', `${origin}: expression ${JSON.stringify(expression)} failed${at}: ${detail}`, {
      origin,
      expression,
      ...(isJsonataError(error) && error.code ? { jsonataCode: error.code } : {}),
    });
  }
  try {
    return toJson(value, '');
  } catch (error) {
    throw new PodflowError('INPUT_BINDING_FAILED', `${origin}: expression ${JSON.stringify(expression)} ${(error as Error).message}`, { origin, expression });
  }
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

/** Deep-copies a JSONata result into JSON, dropping absent values; rejects what JSON cannot hold. */
function toJson(value: unknown, path: string): JsonValue | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`yields a non-finite number${where(path)}, which is not JSON`);
    return value;
  }
  if (Array.isArray(value)) {
    const items: JsonValue[] = [];
    value.forEach((item, index) => {
      const converted = toJson(item, `${path}[${index}]`);
      if (converted !== undefined) items.push(converted);
    });
    return items;
  }
  if (typeof value === 'object' && !isLambda(value) && isPlainObject(value)) {
    const out: JsonObject = {};
    for (const [key, item] of Object.entries(value)) {
      const converted = toJson(item, path ? `${path}.${key}` : key);
      if (converted !== undefined) out[key] = converted;
    }
    return out;
  }
  throw new Error(`yields a function or another non-JSON value${where(path)}; return data, not functions`);
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function where(path: string): string {
  return path ? ` at ${path}` : '';
}
