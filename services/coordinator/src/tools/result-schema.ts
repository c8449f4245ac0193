import { PodflowError } from '@podflow/protocol';
import { compileJsonSchema, schemaMismatch } from '@podflow/workflow';
import type { ValidateFunction } from 'ajv';

/**
 * Compiles a tool call's `resultSchema` before any code runs (@podflow/workflow json-schema.ts:
 * bounded size, patterns on RE2, nothing fetched).
 * @throws PodflowError BAD_REQUEST naming the problem.
 */
export function compileResultSchema(schema: Record<string, unknown>): ValidateFunction {
  const compiled = compileJsonSchema(schema);
  if ('problem' in compiled) throw new PodflowError('BAD_REQUEST', `resultSchema ${compiled.problem}; fix the schema`);
  return compiled.validate;
}

/** Where and why `value` breaks the schema, as the agent reads it, or undefined when it matches. */
export function resultProblem(validate: ValidateFunction, value: unknown): { path: string; message: string } | undefined {
  const mismatch = schemaMismatch(validate, value);
  if (!mismatch) return undefined;
  return { path: mismatch.path, message: `the result at ${mismatch.path} ${mismatch.reason}, as resultSchema requires; change the code so main returns a matching value` };
}
