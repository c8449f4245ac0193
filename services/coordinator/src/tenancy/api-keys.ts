import { parseCpuQuantity, parseMemoryQuantity } from '@podflow/protocol';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';

/**
 * Tenants and their API keys as data (the admin API). Pure parts: records, ids, secrets and the
 * request bodies. Keys are random (256 bits), shown once when issued, and stored only as their
 * sha256 (`hashApiKey`), like the PODFLOW_API_KEYS bootstrap keys.
 */
/** A tenant's own settings, each over the operator's environment setting of the same purpose. */
export interface TenantSettings {
  /** Fair dispatch settings of this tenant, over TENANT_WEIGHTS / TENANT_MAX_IN_FLIGHT_BY_TENANT and the defaults. */
  weight?: number;
  maxInFlight?: number;
  /** Runs it may start per minute, over TENANT_RUNS_PER_MINUTE. */
  runsPerMinute?: number;
  /** Runs it may have started and not finished, over TENANT_MAX_RUNS_IN_PROGRESS. */
  maxRunsInProgress?: number;
  /** Hosts its webhook URLs may name, over WEBHOOK_ALLOWED_HOSTS. */
  webhookHosts?: string[];
  /** What one run may ask for (tenancy/node-limits.ts), over the TENANT_MAX_* settings. */
  maxNodeTimeoutSeconds?: number;
  maxRunTimeoutSeconds?: number;
  maxNodeMemory?: string;
  maxNodeCpu?: string;
}

/** The settings a tenant record may carry (what PATCH /v1/admin/tenants/:id sets or clears with null). */
export const TENANT_SETTINGS = ['weight', 'maxInFlight', 'runsPerMinute', 'maxRunsInProgress', 'webhookHosts', 'maxNodeTimeoutSeconds', 'maxRunTimeoutSeconds', 'maxNodeMemory', 'maxNodeCpu'] as const;

export interface TenantRecord extends TenantSettings {
  id: string;
  name: string;
  createdAt: number;
  /** Set while the tenant is disabled: every key of it, bootstrap ones too, is refused (403). */
  disabledAt?: number;
}

export interface ApiKeyRecord {
  /** Public id (`key_…`): names the key in the admin API and logs; not a secret. */
  id: string;
  tenantId: string;
  name: string;
  createdAt: number;
  /** Set once revoked (or rotated away): the key is refused everywhere within seconds. */
  revokedAt?: number;
}

/** What the admin API shows of a key: never the secret, never its hash. */
export interface ApiKeyView {
  id: string;
  tenantId: string;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export const TENANT_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** A new secret: `pfk_` and 43 characters of base64url (32 random bytes). */
export function newApiKey(): string {
  return `pfk_${randomBytes(32).toString('base64url')}`;
}

export function newKeyId(): string {
  return `key_${randomBytes(9).toString('base64url')}`;
}

/** A Kubernetes memory quantity such as 512Mi or 2Gi. */
export const memoryQuantity = z.string().refine((q) => parseMemoryQuantity(q) !== undefined, { message: 'a memory quantity such as 512Mi, 2Gi or 1G' });
/** A Kubernetes CPU quantity such as 2 or 500m. */
export const cpuQuantity = z.string().refine((q) => parseCpuQuantity(q) !== undefined, { message: 'a CPU quantity such as 2, 0.5 or 500m' });

const name = z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');

export const createTenantBody = z
  .object({
    id: z.string().regex(TENANT_ID, 'a tenant id is 1-64 letters, digits, _ or -'),
    name: name.optional(),
  })
  .strict();

export const updateTenantBody = z
  .object({
    name: name.optional(),
    disabled: z.boolean().optional(),
    /** Share under contention; null goes back to the operator's setting. */
    weight: z.number().min(0.01).max(1000).nullable().optional(),
    /** Most executions in `exec` at once; null goes back to the operator's setting. */
    maxInFlight: z.number().int().min(1).max(1_000_000).nullable().optional(),
    /** Runs it may start per minute (0: no limit); null goes back to the operator's setting. */
    runsPerMinute: z.number().int().min(0).max(10_000_000).nullable().optional(),
    /** Runs started and not finished it may have (0: no limit); null goes back to the operator's setting. */
    maxRunsInProgress: z.number().int().min(0).max(100_000_000).nullable().optional(),
    /** Host patterns its webhook URLs may name (`*`, `example.com`, `*.example.com`); null goes back to WEBHOOK_ALLOWED_HOSTS. */
    webhookHosts: z
      .array(z.string().toLowerCase().regex(/^(\*|(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*\.?)$/, 'a host pattern is a host name, *.domain or *'))
      .max(100)
      .nullable()
      .optional(),
    /** Longest node and run timeouts its runs may ask for; null goes back to the operator's setting. */
    maxNodeTimeoutSeconds: z.number().int().min(1).max(24 * 3600).nullable().optional(),
    maxRunTimeoutSeconds: z.number().int().min(1).max(30 * 24 * 3600).nullable().optional(),
    /** Most memory and CPU one node may ask for (quantities like 1Gi and 500m); null goes back to the operator's setting. */
    maxNodeMemory: memoryQuantity.nullable().optional(),
    maxNodeCpu: cpuQuantity.nullable().optional(),
  })
  .strict()
  .refine((b) => Object.values(b).some((v) => v !== undefined), { message: `give at least one of "name", "disabled", ${TENANT_SETTINGS.map((f) => `"${f}"`).join(', ')}` });

export const issueKeyBody = z.object({ name }).strict();

export function keyView(record: ApiKeyRecord, lastUsedAt: number | undefined): ApiKeyView {
  return {
    id: record.id,
    tenantId: record.tenantId,
    name: record.name,
    createdAt: new Date(record.createdAt).toISOString(),
    lastUsedAt: lastUsedAt === undefined ? null : new Date(lastUsedAt).toISOString(),
    revokedAt: record.revokedAt === undefined ? null : new Date(record.revokedAt).toISOString(),
  };
}

export function tenantView(record: TenantRecord, source: 'admin' | 'environment') {
  return {
    id: record.id,
    name: record.name,
    // A PODFLOW_API_KEYS tenant without a record has no creation time.
    createdAt: record.createdAt > 0 ? new Date(record.createdAt).toISOString() : null,
    disabled: record.disabledAt !== undefined,
    disabledAt: record.disabledAt === undefined ? null : new Date(record.disabledAt).toISOString(),
    // Set here, over the operator's environment; null: the environment's or the default applies.
    weight: record.weight ?? null,
    maxInFlight: record.maxInFlight ?? null,
    runsPerMinute: record.runsPerMinute ?? null,
    maxRunsInProgress: record.maxRunsInProgress ?? null,
    maxNodeTimeoutSeconds: record.maxNodeTimeoutSeconds ?? null,
    maxRunTimeoutSeconds: record.maxRunTimeoutSeconds ?? null,
    maxNodeMemory: record.maxNodeMemory ?? null,
    maxNodeCpu: record.maxNodeCpu ?? null,
    webhookHosts: record.webhookHosts === undefined ? null : Array.isArray(record.webhookHosts) ? record.webhookHosts : [],
    source,
  };
}
