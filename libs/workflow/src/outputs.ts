import { ownValue, PodflowError, type JsonObject, type NodeError } from '@podflow/protocol';
import { compileJsonSchema, schemaMismatch } from './json-schema';
import type { InputType, OutputType } from './types';

/** What a node's output looks like against its declaration: a failure, and warnings either way. */
export interface OutputCheck {
  error?: NodeError;
  warnings: string[];
}

function isPlainObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `string`, `integer`, `number`, `boolean`, `object`, `array` or `null`: the JSON type of a value. */
export function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function matches(value: unknown, type: OutputType): boolean {
  switch (type) {
    case 'any':
      return true;
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'string':
    case 'boolean':
      return typeof value === type;
    case 'object':
      return isPlainObject(value);
    case 'array':
      return Array.isArray(value);
    case 'null':
      return value === null;
  }
}

/**
 * Checks a successful output against the node's declared `outputs`. A declared key that is
 * missing or of the wrong type is OUTPUT_INVALID; a key that was not declared is kept and only
 * warned about (DESIGN.md: never silently dropped).
 */
export function checkOutput(nodeId: string, declared: Record<string, OutputType> | undefined, output: unknown): OutputCheck {
  if (!isPlainObject(output)) {
    const got = output === undefined ? 'no output' : `a value of type ${jsonTypeOf(output)}`;
    return {
      error: { code: 'OUTPUT_INVALID', message: `node "${nodeId}" returned ${got}; main must return a JSON object`, nodeId },
      warnings: [],
    };
  }
  if (!declared) return { warnings: [] };
  const problems: string[] = [];
  for (const [key, type] of Object.entries(declared)) {
    // Own keys only: a declared `toString` must not be found on Object.prototype.
    if (!Object.hasOwn(output, key)) problems.push(`output key "${key}" is missing (declared as ${type})`);
    else if (!matches(ownValue(output, key), type)) problems.push(`output key "${key}" is ${jsonTypeOf(ownValue(output, key))}, declared as ${type}`);
  }
  const warnings = Object.keys(output)
    .filter((key) => !Object.hasOwn(declared, key))
    .map((key) => `output key "${key}" is not declared in outputs`);
  if (problems.length === 0) return { warnings };
  return {
    error: {
      code: 'OUTPUT_INVALID',
      message: `node "${nodeId}" output does not match its declared outputs: ${problems.join('; ')}`,
      nodeId,
      details: { problems },
    },
    warnings,
  };
}

/** A short rendering of a value for an error message (at most 60 characters). */
function preview(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * Checks bound `args` against the node's declared `inputTypes` (type names or JSON Schemas),
 * before the node is enqueued.
 * @throws PodflowError `INPUT_BINDING_FAILED` naming each input, its declared and its actual type
 * (for a schema: where the value breaks it, and why).
 */
export function checkInputTypes(nodeId: string, declared: Record<string, InputType> | undefined, args: JsonObject): void {
  if (!declared) return;
  const problems: string[] = [];
  for (const [name, type] of Object.entries(declared)) {
    const problem = typeof type === 'string' ? typeProblem(name, type, args) : schemaProblem(name, type, args);
    if (problem) problems.push(problem);
  }
  if (problems.length === 0) return;
  const schemas = Object.values(declared).some((type) => typeof type !== 'string');
  throw new PodflowError(
    'INPUT_BINDING_FAILED',
    `node "${nodeId}": ${problems.join('; ')}; fix the binding under inputs or the ${schemas ? 'type or schema' : 'type'} under inputTypes`,
    { nodeId, problems },
  );
}

function typeProblem(name: string, type: OutputType, args: JsonObject): string | undefined {
  if (!Object.hasOwn(args, name)) return type === 'any' ? undefined : `input "${name}" has no value (its expression matched nothing), declared as ${type}`;
  const value = ownValue(args, name);
  return matches(value, type) ? undefined : `input "${name}" is ${article(jsonTypeOf(value))} (${preview(value)}), declared as ${type}`;
}

function schemaProblem(name: string, schema: JsonObject, args: JsonObject): string | undefined {
  if (!Object.hasOwn(args, name)) return `input "${name}" has no value (its expression matched nothing), declared with a JSON Schema`;
  const compiled = compileJsonSchema(schema);
  // Validated with the definition; a schema that stopped compiling (a newer podflow) still fails the node, saying why.
  if ('problem' in compiled) return `input "${name}": its JSON Schema ${compiled.problem}`;
  const value = ownValue(args, name);
  const mismatch = schemaMismatch(compiled.validate, value);
  return mismatch ? `input "${name}" (${preview(value)}) does not match its JSON Schema at ${mismatch.path}: ${mismatch.reason}` : undefined;
}

function article(type: string): string {
  return type === 'null' ? 'null' : `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;
}
