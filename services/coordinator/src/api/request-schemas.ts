import { LANGUAGES, PodflowError, type JsonObject } from '@podflow/protocol';
import { z } from 'zod';

/**
 * A JSON object from the request, kept exactly as parsed: `z.record` would rebuild it and drop a
 * `__proto__` key (user data may have one). Nesting depth is bounded for the whole body before
 * routing (json-depth.middleware.ts).
 */
const jsonObject = z.custom<JsonObject>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), { message: 'must be a JSON object' });

export const createRunBody = z
  .object({
    workflow: jsonObject.optional(),
    workflowId: z.string().min(1).optional(),
    version: z.number().int().min(1).optional(),
    inputs: jsonObject.default({}),
    idempotencyKey: z.string().min(1).max(200).optional(),
    /** Receives the run's completion as a signed POST (webhooks/webhook-deliveries.ts). */
    webhookUrl: z.string().min(1).max(2048).optional(),
    /** Returned as given in the completion. */
    correlationId: z.string().min(1).max(200).optional(),
  })
  .strict()
  .refine((b) => (b.workflow === undefined) !== (b.workflowId === undefined), {
    message: 'give exactly one of "workflow" (an inline definition) or "workflowId" (a registered one)',
  });

/** `POST /v1/runs/:id/resume`: the run's own definition, an edited one, or another registered version. */
export const resumeRunBody = z
  .object({
    /** An edited definition of the same workflow (same id); its unchanged nodes keep their results. */
    workflow: jsonObject.optional(),
    /** A registered version of the run's workflow, instead of the one the run used. */
    version: z.number().int().min(1).optional(),
    idempotencyKey: z.string().min(1).max(200).optional(),
    webhookUrl: z.string().min(1).max(2048).optional(),
    correlationId: z.string().min(1).max(200).optional(),
  })
  .strict()
  .refine((b) => b.workflow === undefined || b.version === undefined, {
    message: 'give at most one of "workflow" (an edited definition) or "version" (a registered version of the workflow)',
  });

/** `POST /v1/workflows/:id/nodes/:nodeId/test` (runs/test-runs.service.ts). */
export const testNodeBody = z
  .object({
    /** The unsaved definition of this workflow (same id), instead of a registered version. */
    workflow: jsonObject.optional(),
    version: z.number().int().min(1).optional(),
    /** The node's code to try (the builder's edit). */
    code: z.string().optional(),
    inputs: jsonObject.optional(),
    /** Sample upstream outputs: { "<nodeId>": { "output": { ... } } }. */
    nodes: jsonObject.optional(),
    fromRun: z.string().min(1).max(200).optional(),
  })
  .strict()
  .refine((b) => b.workflow === undefined || b.version === undefined, {
    message: 'give at most one of "workflow" (the unsaved definition) or "version" (a registered version)',
  });

export const createExecutionBody = z
  .object({
    language: z.enum(LANGUAGES),
    code: z.string(),
    args: jsonObject.default({}),
    dependencies: z.array(z.string()).default([]),
    timeout: z.union([z.string(), z.number()]).optional(),
    network: z.boolean().optional(),
  })
  .strict();

/** At most FILE_URL_TTL_SECONDS too, checked by RunsService.signFiles against the configuration. */
export const signFilesBody = z.object({ ttlSeconds: z.number().int().min(1).optional() }).strict();

export const listRunsQuery = z.object({
  status: z.enum(['queued', 'running', 'succeeded', 'failed', 'canceled']).optional(),
  workflowId: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().optional(),
});

/** Parses a request part or throws BAD_REQUEST naming each offending field. */
export function parseRequest<T extends z.ZodTypeAny>(schema: T, value: unknown, what: string): z.infer<T> {
  const parsed = schema.safeParse(value ?? {});
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({ path: i.path.join('.') || '(root)', message: i.message }));
  const lines = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  throw new PodflowError('BAD_REQUEST', `invalid ${what}: ${lines}`, { issues });
}

/** `GET /v1/runs/:id`: which nodes to show. Large runs page through their nodes in definition order. */
export const getRunQuery = z
  .object({
    /** Comma-separated node ids: only these (at most 1,000). */
    nodes: z
      .string()
      .max(200_000)
      .transform((v) => v.split(',').filter((id) => id.length > 0))
      .refine((ids) => ids.length <= 1000, { message: 'at most 1000 node ids per request; page with nodeLimit and nodeCursor instead' })
      .optional(),
    nodeLimit: z.coerce.number().int().min(0).max(1000).default(1000),
    /** `nextNodeCursor` of the previous page. */
    nodeCursor: z.string().regex(/^\d{1,9}$/, { message: 'nodeCursor must be the nextNodeCursor of a previous page' }).optional(),
  })
  .strict();
