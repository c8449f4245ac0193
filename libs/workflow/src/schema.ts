import { z } from 'zod';
import { LANGUAGES, emptyRecord, type JsonObject } from '@podflow/protocol';
import { durationToMs, formatDuration } from './durations';
import { expressionSyntaxError } from './expressions';
import type { InputType, OutputType, WorkflowLimits } from './types';

/** Node ids are joined with `.` into execution ids (`run.node.attempt`), so they never contain dots. */
export const NODE_ID_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
/** Workflow ids appear in URLs and storage keys: no dots or slashes. */
export const WORKFLOW_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
/** Types a node may declare for its output keys (`integer` is a number without a fraction). */
export const OUTPUT_TYPES: readonly OutputType[] = ['string', 'number', 'integer', 'boolean', 'object', 'array', 'null', 'any'];
/** Edge `on` values; `success` is the default. */
export const EDGE_KINDS = ['success', 'failure', 'always'] as const;
/** Retry backoff kinds; `exponential` is the default. */
export const BACKOFF_KINDS = ['fixed', 'exponential'] as const;

/** Retry delays beyond this are almost certainly a unit mistake (`delay: 3600` meant ms). */
const MAX_RETRY_DELAY_MS = 3_600_000;
/** Retry delay when a node gives `retries` without `delay`. */
export const DEFAULT_RETRY_DELAY_MS = 1_000;

const CPU_PATTERN = /^(?:\d+(?:\.\d+)?|\.\d+)m?$/;
const MEMORY_PATTERN = /^(?:\d+(?:\.\d+)?|\.\d+)(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;

function expression(): z.ZodEffects<z.ZodString> {
  return z.string().superRefine((text, ctx) => {
    const problem = expressionSyntaxError(text);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
}

/** Duration in any accepted spelling → ms, bounded, with the limit named in the message. */
function duration(bounds: { min: number; max: number; maxReason: string }) {
  return z.unknown().transform((value, ctx) => {
    const parsed = durationToMs(value);
    if ('error' in parsed) {
      ctx.addIssue({ code: 'custom', message: parsed.error });
      return z.NEVER;
    }
    if (parsed.ms < bounds.min) {
      const floor = bounds.min <= 1 ? 'must be greater than 0' : `must be at least ${formatDuration(bounds.min)}`;
      ctx.addIssue({ code: 'custom', message: `${floor}, got ${formatDuration(parsed.ms)}` });
      return z.NEVER;
    }
    if (parsed.ms > bounds.max) {
      ctx.addIssue({ code: 'custom', message: `${formatDuration(parsed.ms)} is above the limit of ${formatDuration(bounds.max)} (${bounds.maxReason}); use a shorter timeout` });
      return z.NEVER;
    }
    return parsed.ms;
  });
}

/** Kubernetes quantity; YAML turns `cpu: 1` into a number, which is fine and kept as `"1"`. */
function quantity(pattern: RegExp, hint: string) {
  return z.unknown().transform((value, ctx) => {
    const text = typeof value === 'number' && Number.isFinite(value) && value > 0 ? String(value) : value;
    if (typeof text !== 'string' || !pattern.test(text) || Number.parseFloat(text) <= 0) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is not a valid quantity: ${hint}` });
      return z.NEVER;
    }
    return text;
  });
}

/** Why `text` cannot be a node's code (empty, too large), or undefined. */
export function codeProblem(text: string, limits: Pick<WorkflowLimits, 'maxCodeBytes'>): string | undefined {
  if (text.trim() === '') return 'is empty: write the node source with a main(args) function';
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > limits.maxCodeBytes) return `is ${bytes} bytes; the limit is ${limits.maxCodeBytes} bytes: move data into inputs or files and keep the code small`;
  return undefined;
}

/** A declared input type: a name of the `outputs` vocabulary (enum issues as for outputs), or a JSON Schema object. */
function inputType() {
  const name = z.enum(OUTPUT_TYPES as [OutputType, ...OutputType[]]);
  return z.unknown().transform((value, ctx): InputType => {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as JsonObject;
    const parsed = name.safeParse(value);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) ctx.addIssue(issue as z.IssueData);
    return z.NEVER;
  });
}

function code(limits: WorkflowLimits) {
  // Copied now: a cached schema must not follow later changes to the object it was built from.
  const bounds = { maxCodeBytes: limits.maxCodeBytes };
  return z.string().superRefine((text, ctx) => {
    const problem = codeProblem(text, bounds);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
}

/**
 * A mapping keyed by user names (input bindings, output keys). `z.record` silently drops a
 * `__proto__` key (its guard against prototype pollution), which would lose a binding; this keeps
 * every own key, in a record without a prototype, and reports a bad value under its key.
 */
function namedRecord<T extends z.ZodTypeAny>(value: T) {
  return z.unknown().transform((raw, ctx): Record<string, z.output<T>> => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      ctx.addIssue({ code: z.ZodIssueCode.invalid_type, expected: z.ZodParsedType.object, received: z.getParsedType(raw) });
      return z.NEVER;
    }
    const out = emptyRecord<z.output<T>>();
    for (const [key, item] of Object.entries(raw)) {
      const parsed = value.safeParse(item);
      if (parsed.success) out[key] = parsed.data as z.output<T>;
      else for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, path: [key, ...issue.path] } as z.IssueData);
    }
    return out;
  });
}

/** Schemas built so far, by limits: building one takes ~0.13 ms, ~9x validating a one-node definition with it. */
const schemas = new Map<string, ReturnType<typeof buildWorkflowSchema>>();
/** Distinct limits are few (a deployment's settings); the bound only guards against a caller varying them. */
const MAX_CACHED_SCHEMAS = 16;

/** Zod schema of a raw definition (YAML/JSON as written) for one set of limits, built once per set. */
export function workflowSchema(limits: WorkflowLimits): ReturnType<typeof buildWorkflowSchema> {
  const key = [limits.maxNodes, limits.maxCodeBytes, limits.defaultNodeTimeoutMs, limits.maxNodeTimeoutMs, limits.defaultRunTimeoutMs, limits.maxRunTimeoutMs, limits.maxRetries].join(',');
  let schema = schemas.get(key);
  if (!schema) {
    if (schemas.size >= MAX_CACHED_SCHEMAS) schemas.clear();
    schema = buildWorkflowSchema(limits);
    schemas.set(key, schema);
  }
  return schema;
}

function buildWorkflowSchema(limits: WorkflowLimits) {
  const retries = z
    .object({
      max: z
        .number()
        .int({ message: 'must be a whole number of retries' })
        .min(0, { message: 'must be 0 or more' })
        .max(limits.maxRetries, { message: `must be at most ${limits.maxRetries} (the retry limit)` }),
      backoff: z.enum(BACKOFF_KINDS).default('exponential'),
      delay: duration({ min: 0, max: MAX_RETRY_DELAY_MS, maxReason: 'longest retry delay' }).optional(),
    })
    .strict();

  const resources = z
    .object({
      cpu: quantity(CPU_PATTERN, 'use cores or millicores like 1, 0.5 or 500m').optional(),
      memory: quantity(MEMORY_PATTERN, 'use bytes or a suffix like 256Mi, 1Gi (binary) or 500M (decimal)').optional(),
    })
    .strict();

  const node = z
    .object({
      id: z.string().regex(NODE_ID_PATTERN, {
        message: 'must start with a letter or _, then letters, digits, _ or - (at most 64 characters, no dots)',
      }),
      type: z.literal('code').default('code'),
      language: z.enum(LANGUAGES),
      code: code(limits),
      inputs: namedRecord(expression()).optional(),
      // A type name, or a JSON Schema object (compiled and bounded by validate.ts checkInputTypes).
      inputTypes: namedRecord(inputType()).optional(),
      // Each spec is checked by dependencies.ts (validate.ts checkDependencies), with its own messages.
      dependencies: z.array(z.string()).default(() => []),
      timeout: duration({ min: 1, max: limits.maxNodeTimeoutMs, maxReason: 'longest node timeout' }).optional(),
      retries: retries.optional(),
      resources: resources.optional(),
      outputs: namedRecord(z.enum(OUTPUT_TYPES as [OutputType, ...OutputType[]])).optional(),
      network: z.boolean().default(false),
    })
    .strict();

  const edge = z
    .object({
      from: z.string(),
      to: z.string(),
      on: z.enum(EDGE_KINDS).default('success'),
      when: expression().optional(),
    })
    .strict();

  return z
    .object({
      id: z.string().regex(WORKFLOW_ID_PATTERN, {
        message: 'must start with a letter or digit, then letters, digits, _ or - (at most 128 characters)',
      }),
      name: z.string().optional(),
      description: z.string().optional(),
      output: expression().optional(),
      timeout: duration({ min: 1, max: limits.maxRunTimeoutMs, maxReason: 'longest run timeout' }).optional(),
      nodes: z.array(node).min(1, { message: 'must contain at least one node' }),
      edges: z.array(edge).default(() => []),
    })
    .strict();
}

/** A definition as zod returns it: shape-checked, durations already in ms, defaults not yet applied. */
export type RawWorkflow = z.output<ReturnType<typeof workflowSchema>>;

/** Field names per object kind, for "unknown field ... did you mean" hints. */
export const KNOWN_FIELDS = {
  workflow: ['id', 'name', 'description', 'output', 'timeout', 'nodes', 'edges'],
  node: ['id', 'type', 'language', 'code', 'inputs', 'inputTypes', 'dependencies', 'timeout', 'retries', 'resources', 'outputs', 'network'],
  edge: ['from', 'to', 'on', 'when'],
  retries: ['max', 'backoff', 'delay'],
  resources: ['cpu', 'memory'],
} as const;

/** Hints appended to "is required" for the fields people most often forget. */
export const REQUIRED_HINTS: Record<string, string> = {
  id: 'give it an id',
  language: `set one of ${LANGUAGES.join(', ')}`,
  code: 'put the source with a main(args) function in `code`',
  nodes: 'list at least one node',
  from: 'name the source node',
  to: 'name the target node',
  max: 'say how many retries, e.g. max: 2',
};

