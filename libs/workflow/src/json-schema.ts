import Ajv, { type ValidateFunction } from 'ajv';
import { RE2JS } from 're2js';

/** A JSON Schema larger than this (as JSON) is refused: it is checked against caller-controlled data. */
export const JSON_SCHEMA_MAX_BYTES = 16 * 1024;
/** Compiled schemas kept (keyed by their JSON text), oldest dropped first. */
const CACHE_MAX = 500;

/**
 * `pattern` and `patternProperties` run on RE2 (linear time, re2js, as expressions do), never on
 * JavaScript's backtracking engine: schemas come from tenants, and `(a+)+$` must not freeze a
 * coordinator. RE2 syntax applies (no lookaround, no backreferences).
 */
const re2: ((pattern: string, flags: string) => { test(text: string): boolean }) & { code: string } = Object.assign(
  (pattern: string, flags: string) => {
    const compiled = RE2JS.compile(pattern, flags.includes('i') ? RE2JS.CASE_INSENSITIVE : 0);
    return { test: (text: string) => compiled.matcher(text).find() };
  },
  { code: 'podflow-re2' },
);

// Nothing is fetched: a `$ref` outside the schema does not compile. Unknown keywords and formats are ignored (strict: false).
const ajv = new Ajv({ allErrors: false, strict: false, code: { regExp: re2 } });
const cache = new Map<string, ValidateFunction>();

/**
 * Compiles a JSON Schema (draft-07 keywords), once per distinct text.
 * @returns the validator, or the reason it cannot be one (too large, or not a schema Ajv compiles).
 */
export function compileJsonSchema(schema: unknown): { validate: ValidateFunction } | { problem: string } {
  const text = JSON.stringify(schema);
  const cached = cache.get(text);
  if (cached) return { validate: cached };
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > JSON_SCHEMA_MAX_BYTES) return { problem: `is ${bytes} bytes of JSON; a schema may have at most ${JSON_SCHEMA_MAX_BYTES}` };
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return { problem: 'is not a JSON Schema (an object such as {"type": "string"})' };
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema as object);
  } catch (error) {
    return { problem: `is not a JSON Schema podflow can check: ${(error as Error).message} (draft-07 keywords; $ref only within the schema; patterns in RE2 syntax)` };
  }
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
  cache.set(text, validate);
  return { validate };
}

/** Where and why `value` breaks the schema (path `/items/0`, "must be number"), or undefined when it matches. */
export function schemaMismatch(validate: ValidateFunction, value: unknown): { path: string; reason: string } | undefined {
  if (validate(value)) return undefined;
  const error = validate.errors?.[0];
  const params = error?.params && Object.keys(error.params).length > 0 ? ` (${JSON.stringify(error.params)})` : '';
  return { path: error?.instancePath || '/', reason: `${error?.message ?? 'does not match'}${params}` };
}
