import { types } from 'node:util';
import type { JsonObject } from '@podflow/protocol';
import { UserFailure } from './user-failure';

/** Deeper than this is almost surely a mistake (and close to where JSON.stringify overflows). */
const MAX_DEPTH = 512;
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function invalid(message: string): UserFailure {
  return new UserFailure('OUTPUT_INVALID', message);
}

function childPath(path: string, key: string): string {
  return IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function className(value: object): string | undefined {
  try {
    const ctor = (value as { constructor?: { name?: unknown } }).constructor;
    return typeof ctor?.name === 'string' && ctor.name ? ctor.name : undefined;
  } catch {
    return undefined; // a Proxy or a hostile getter
  }
}

/** "what it is; how to fix it" for a value JSON cannot represent. */
function describe(value: unknown): string {
  switch (typeof value) {
    case 'undefined':
      return 'undefined, which is not JSON; omit the key or use null';
    case 'number':
      return `${String(value)}: not valid JSON; return null or a string`;
    case 'bigint':
      return `a bigint (${value}n), which is not JSON; return Number(x) or x.toString()`;
    case 'function':
      return 'a function, which is not JSON; call it, or return its name as a string';
    case 'symbol':
      return 'a symbol, which is not JSON; return symbol.description';
  }
  const object = value as object;
  if (types.isDate(object)) return 'a Date, which is not JSON; return date.toISOString()';
  if (types.isMap(object)) return 'a Map, which is not JSON; return Object.fromEntries(map)';
  if (types.isSet(object)) return 'a Set, which is not JSON; return [...set]';
  if (types.isPromise(object)) return 'a Promise, which is not JSON; did you forget `await`?';
  if (types.isRegExp(object)) return 'a RegExp, which is not JSON; return regex.source';
  if (types.isNativeError(object)) return 'an Error, which is not JSON; return { name: err.name, message: err.message }';
  if (types.isTypedArray(object) || types.isAnyArrayBuffer(object)) {
    return `a ${className(object) ?? 'binary buffer'}, which is not JSON; return Array.from(x) or buf.toString('base64')`;
  }
  if (types.isBoxedPrimitive(object)) return 'a boxed primitive, which is not JSON; return x.valueOf()';
  const name = className(object);
  return `an instance of class ${name ?? '(anonymous)'}, which is not JSON; return a plain object, e.g. { ...x } or x.toJSON()`;
}

function walk(value: unknown, path: string, depth: number, ancestors: Set<object>): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number' && Number.isFinite(value)) return;
  if (typeof value !== 'object' || !(Array.isArray(value) || isPlainObject(value))) {
    throw invalid(`${path} is ${describe(value)}`);
  }
  if (depth >= MAX_DEPTH) throw invalid(`${path} is nested more than ${MAX_DEPTH} levels deep`);
  if (ancestors.has(value)) throw invalid(`${path} is a circular reference (it contains itself)`);
  ancestors.add(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) walk(value[i], `${path}[${i}]`, depth + 1, ancestors);
  } else {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) walk(record[key], childPath(path, key), depth + 1, ancestors);
  }
  ancestors.delete(value);
}

function topLevelProblem(result: unknown): string | undefined {
  if (Array.isArray(result)) return 'main must return an object, got an array; wrap it: { items: [...] }';
  if (result === undefined) return 'main returned undefined; return an object, e.g. { result: value } (did you forget `return`?)';
  if (result === null) return 'main returned null; return an object, e.g. { result: value }';
  if (typeof result === 'string') return 'main must return an object, got a string; if it holds JSON, return JSON.parse(value)';
  if (typeof result !== 'object') return `main must return an object, got a ${typeof result}; return e.g. { result: value }`;
  return undefined;
}

/**
 * Checks what main returned against the output contract and serializes it. The result is parsed
 * back from that JSON, so the response carries exactly what was measured even if getters on the
 * user's object would answer differently a second time.
 */
export function normalizeOutput(result: unknown, maxOutputBytes: number): JsonObject {
  const problem = topLevelProblem(result);
  if (problem) throw invalid(problem);
  let text: string;
  try {
    walk(result, 'output', 0, new Set());
    text = JSON.stringify(result);
  } catch (error) {
    if (error instanceof UserFailure) throw error;
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw invalid(`the output could not be serialized (${reason}); return plain objects, arrays, strings, numbers, booleans and null`);
  }
  const size = Buffer.byteLength(text, 'utf8');
  if (size > maxOutputBytes) {
    throw new UserFailure(
      'OUTPUT_TOO_LARGE',
      `the output is ${size} bytes of JSON, over the ${maxOutputBytes}-byte limit; write large data to a file in the working directory instead`,
    );
  }
  return JSON.parse(text) as JsonObject;
}
