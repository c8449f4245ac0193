import { PodflowError } from '@podflow/protocol';
import Ajv, { type ValidateFunction } from 'ajv';
import { RE2JS } from 're2js';

/** A result schema larger than this (as JSON) is refused: it is checked against every call's result. */
export const RESULT_SCHEMA_MAX_BYTES = 64 * 1024;

/**
 * `pattern` and `patternProperties` run on RE2 (linear time), never on JavaScript's backtracking
 * engine: a schema is caller input, and `(a+)+$` must not freeze the coordinator.
 */
const re2: ((pattern: string, flags: string) => { test(text: string): boolean }) & { code: string } = Object.assign(
  (pattern: string, flags: string) => {
    const compiled = RE2JS.compile(pattern, flags.includes('i') ? RE2JS.CASE_INSENSITIVE : 0);
    return { test: (text: string) => compiled.matcher(text).find() };
  },
  { code: 'podflow-re2' },
);

const ajv = new Ajv({ allErrors: false, strict: false, code: { regExp: re2 } });

/**
 * Compiles a tool call's `resultSchema` before any code runs.
 * @throws PodflowError BAD_REQUEST naming the problem: too large, or not a schema Ajv can compile
 * (unknown keyword values, a `$ref` that points nowhere: nothing is fetched).
 */
export function compileResultSchema(schema: Record<string, unknown>): ValidateFunction {
  const bytes = Buffer.byteLength(JSON.stringify(schema), 'utf8');
  if (bytes > RESULT_SCHEMA_MAX_BYTES) throw new PodflowError('BAD_REQUEST', `resultSchema is ${bytes} bytes of JSON; at most ${RESULT_SCHEMA_MAX_BYTES}`);
  try {
    return ajv.compile(schema);
  } catch (error) {
    throw new PodflowError('BAD_REQUEST', `resultSchema is not a JSON Schema podflow can check: ${(error as Error).message}; fix the schema (draft-07 keywords; $ref only within the schema)`);
  }
}

/** Where and why `value` breaks the schema (`/items/0`: must be number), or undefined when it matches. */
export function resultProblem(validate: ValidateFunction, value: unknown): { path: string; message: string } | undefined {
  if (validate(value)) return undefined;
  const error = validate.errors?.[0];
  const path = error?.instancePath || '/';
  const detail = error ? `${error.message ?? 'does not match'}${error.params && Object.keys(error.params).length > 0 ? ` (${JSON.stringify(error.params)})` : ''}` : 'does not match';
  return { path, message: `the result at ${path} ${detail}, as resultSchema requires (schema path ${error?.schemaPath ?? '#'}); change the code so main returns a matching value` };
}
