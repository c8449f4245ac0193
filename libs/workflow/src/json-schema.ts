import Ajv, { type FuncKeywordDefinition, type ValidateFunction } from 'ajv';
import { RE2JS } from 're2js';
import { WORK_PER_MS } from './regex-engine';

/** A JSON Schema larger than this (as JSON) is refused: it is checked against caller-controlled data. */
export const JSON_SCHEMA_MAX_BYTES = 16 * 1024;
/** Compiled schemas kept (keyed by their JSON text), oldest dropped first; each holds its own Ajv (about 35 KB). */
const CACHE_MAX = 500;

/**
 * `pattern` and `patternProperties` run on RE2 (linear time, re2js, as expressions do), never on
 * JavaScript's backtracking engine: schemas come from tenants, and `(a+)+$` must not freeze a
 * coordinator. RE2 syntax applies (no lookaround, no backreferences). Ajv keys the regexes it
 * keeps by their string form, so each must print as its own pattern.
 */
const re2: ((pattern: string, flags: string) => { test(text: string): boolean; toString(): string }) & { code: string } = Object.assign(
  (pattern: string, flags: string) => {
    const compiled = RE2JS.compile(pattern, flags.includes('i') ? RE2JS.CASE_INSENSITIVE : 0);
    return {
      test: (text: string) => {
        // RE2 is linear in the text times the program, and one scan cannot be interrupted: each is
        // bounded like an expression's match attempt, and the check's patterns together in time.
        const work = compiled.programSize() * text.length;
        if (work > PATTERN_WORK_PER_TEST) {
          throw new Error(
            `pattern /${pattern.slice(0, 100)}/ would scan ${text.length} characters with an RE2 program of ${compiled.programSize()} instructions (${work} units of work; one scan may do ${PATTERN_WORK_PER_TEST}): use a simpler pattern or a shorter value`,
          );
        }
        if (Date.now() > patternDeadline) throw new Error(`the schema's patterns ran longer than ${PATTERN_CHECK_MS} ms over this value: use simpler patterns or a smaller value`);
        return compiled.matcher(text).find();
      },
      toString: () => `/${pattern}/${flags}`,
    };
  },
  { code: 'podflow-re2' },
);

/**
 * RE2 work (program size × characters) one pattern scan may do: what one expression match attempt
 * may do under the default time limit, about a second at RE2JS's slowest. `[ab]{1000}$` over
 * 100,000 characters held the coordinator 8 s before.
 */
export const PATTERN_WORK_PER_TEST = 1000 * WORK_PER_MS;
/** How long the patterns of one schema check may run together (checked before each scan). */
export const PATTERN_CHECK_MS = 1000;
/** When the check under way (`schemaMismatch`, synchronous) must stop scanning; none outside one. */
let patternDeadline = Infinity;

/** Equal JSON values give equal strings, whatever the key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * `uniqueItems` in linear time: Ajv's own compares every pair of items (deep equality), so an
 * array of a million objects would hold the coordinator for hours.
 */
const linearUniqueItems: FuncKeywordDefinition = {
  keyword: 'uniqueItems',
  type: 'array',
  schemaType: 'boolean',
  errors: true,
  validate: function unique(schema: boolean, data: unknown[]): boolean {
    if (!schema) return true;
    const seen = new Set<string>();
    for (let i = 0; i < data.length; i++) {
      const key = canonical(data[i]);
      if (seen.has(key)) {
        (unique as unknown as { errors: unknown[] }).errors = [{ keyword: 'uniqueItems', message: `must not have duplicate items (item ${i} repeats an earlier one)`, params: { i } }];
        return false;
      }
      seen.add(key);
    }
    return true;
  },
};

/**
 * The draft-07 meta-schema's own validator, called directly: `validateSchema` would follow a
 * schema's `$schema` (and remember every distinct one it was given).
 */
const draft07 = new Ajv({ strict: false, addUsedSchema: false, logger: false }).getSchema('http://json-schema.org/draft-07/schema')!;
/** What `$schema` may say: draft-07, the only dialect checked. */
const DRAFT_07_IDS = new Set(['http://json-schema.org/draft-07/schema', 'http://json-schema.org/draft-07/schema#', 'https://json-schema.org/draft-07/schema', 'https://json-schema.org/draft-07/schema#']);

/**
 * One Ajv per compiled schema: Ajv keeps every schema it compiled, and registers its `$id` (which
 * `$ref: "#"` needs), for the instance's lifetime, so a shared one would grow without bound and
 * let one tenant's `$id` answer another tenant's `$ref`. Each instance lives exactly as long as its cache entry. Refs are
 * not inlined (a schema of many refs to a large definition would generate megabytes of code);
 * `required` and `properties` look at own properties only (`constructor` is not inherited in JSON).
 */
function freshAjv(): Ajv {
  // meta: the draft-07 meta-schema stays resolvable (a field typed as a JSON Schema refers to it); logger: no console output per unknown format.
  const ajv = new Ajv({ strict: false, meta: true, validateSchema: false, inlineRefs: false, ownProperties: true, allErrors: false, logger: false, code: { regExp: re2 } });
  ajv.removeKeyword('uniqueItems');
  ajv.addKeyword(linearUniqueItems);
  return ajv;
}

const cache = new Map<string, ValidateFunction>();

/**
 * Compiles a JSON Schema (draft-07 keywords), once per distinct text.
 * @returns the validator, or the reason it cannot be one: too large, not draft-07, `$async`, or
 * not something Ajv compiles (a `$ref` that points outside the schema: nothing is fetched).
 */
export function compileJsonSchema(schema: unknown): { validate: ValidateFunction } | { problem: string } {
  const text = JSON.stringify(schema);
  const cached = cache.get(text);
  if (cached) {
    // Least recently used goes first: a hit moves to the back.
    cache.delete(text);
    cache.set(text, cached);
    return { validate: cached };
  }
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > JSON_SCHEMA_MAX_BYTES) return { problem: `is ${bytes} bytes of JSON; a schema may have at most ${JSON_SCHEMA_MAX_BYTES}` };
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return { problem: 'is not a JSON Schema (an object such as {"type": "string"})' };
  const hint = '(draft-07 keywords; $ref only within the schema; patterns in RE2 syntax)';
  const { $schema: dialect, ...body } = schema as Record<string, unknown>;
  if (dialect !== undefined && !(typeof dialect === 'string' && DRAFT_07_IDS.has(dialect))) {
    return { problem: `declares "$schema": ${JSON.stringify(dialect)}; podflow checks draft-07 schemas only: remove "$schema", or use "http://json-schema.org/draft-07/schema#"` };
  }
  if (!draft07(body)) {
    const error = draft07.errors?.[0];
    return { problem: `is not a JSON Schema podflow can check: at ${error?.instancePath || '/'} it ${error?.message ?? 'is invalid'} ${hint}` };
  }
  let validate: ValidateFunction;
  try {
    validate = freshAjv().compile(body);
  } catch (error) {
    return { problem: `is not a JSON Schema podflow can check: ${(error as Error).message} ${hint}` };
  }
  if ((validate as { $async?: unknown }).$async) return { problem: 'is an asynchronous schema ($async), which podflow does not run; remove "$async"' };
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
  cache.set(text, validate);
  return { validate };
}

/**
 * Where and why `value` breaks the schema (path `/items/0`, "must be number"), or undefined when
 * it matches. A schema that cannot be checked against this value (one that refers to itself
 * without end) is reported at `/` as such, never thrown.
 */
export function schemaMismatch(validate: ValidateFunction, value: unknown): { path: string; reason: string } | undefined {
  let valid: unknown;
  patternDeadline = Date.now() + PATTERN_CHECK_MS;
  try {
    valid = validate(value);
  } catch (error) {
    const why = error instanceof RangeError ? 'it refers to itself without end, or the value nests too deep for it' : (error as Error).message;
    return { path: '/', reason: `cannot be checked against this value: ${why}; fix the schema` };
  } finally {
    patternDeadline = Infinity;
  }
  if (valid === true) return undefined;
  const error = validate.errors?.[0];
  const params = error?.params && Object.keys(error.params).length > 0 ? ` (${JSON.stringify(error.params)})` : '';
  return { path: error?.instancePath || '/', reason: `${error?.message ?? 'does not match'}${params}` };
}
