import { DEFAULT_OUTPUT_INLINE_MAX_BYTES } from '@podflow/protocol';
import { checkRedisConfig, redisConfigShape } from '@podflow/redis';
import { checkStorageConfig, storageConfigShape } from '@podflow/storage';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { cpuQuantity, memoryQuantity } from './tenancy/api-keys';
import { dependencyPolicyEnv } from './tenancy/dependency-policy';
import { tenantNumbersEnv } from './tenancy/dispatch-policy';
import { egressTenantsEnv } from './tenancy/egress-policy';
import { cidrProblem } from './webhooks/webhook-address';

const int = (min: number) => z.coerce.number().int().min(min);

/** `key=tenant,key2=tenant2` → map of sha256(key) → tenant. Keys are never kept in clear. */
const apiKeys = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    const byHash = new Map<string, string>();
    if (raw === undefined) return byHash; // required unless the admin API issues keys (checkKeysConfig)
    for (const pair of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
      const [key, tenant, ...rest] = pair.split('=');
      if (!key || !tenant || rest.length > 0 || !/^[A-Za-z0-9_-]{1,64}$/.test(tenant)) {
        ctx.addIssue({ code: 'custom', message: `"${pair.replace(/^[^=]*/, '<key>')}" is not key=tenant (tenant: letters, digits, _ or -)` });
        continue;
      }
      byHash.set(hashApiKey(key), tenant);
    }
    if (byHash.size === 0) ctx.addIssue({ code: 'custom', message: 'PODFLOW_API_KEYS holds no key=tenant pair' });
    return byHash;
  });

/** Comma-separated host patterns (WEBHOOK_ALLOWED_HOSTS). */
const hostPatterns = z
  .string()
  .transform((raw) => raw.split(',').map((p) => p.trim().toLowerCase()).filter(Boolean))
  .refine((patterns) => patterns.every((p) => p === '*' || /^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*\.?$/.test(p)), { message: 'WEBHOOK_ALLOWED_HOSTS is a comma-separated list of host names, *.domain patterns or *' });

/** Comma-separated CIDRs (WEBHOOK_ALLOWED_CIDRS). */
const cidrList = z
  .string()
  .transform((raw) => raw.split(',').map((p) => p.trim()).filter(Boolean))
  .refine((cidrs) => cidrs.every((c) => cidrProblem(c) === undefined), { message: 'WEBHOOK_ALLOWED_CIDRS is a comma-separated list of address/prefix ranges such as 10.20.0.0/16 or fd00::/8' });

/** The coordinator's whole configuration, validated at boot (README "Configuration"). */
export const coordinatorConfigSchema = z.object({
  PORT: int(0).default(8080),
  HOST: z.string().default('0.0.0.0'),
  // REDIS_URL | REDIS_CLUSTER_NODES | REDIS_SENTINELS (+ REDIS_SENTINEL_NAME), REDIS_USERNAME, REDIS_PASSWORD, REDIS_TLS, QUEUE_PREFIX.
  ...redisConfigShape,
  PODFLOW_API_KEYS: apiKeys,
  /** The admin API's key (`/v1/admin`: tenants and their keys); never a tenant key. Or PODFLOW_ADMIN_KEY_FILE. */
  PODFLOW_ADMIN_KEY: z.string().min(24, 'PODFLOW_ADMIN_KEY must be at least 24 characters: generate one, e.g. openssl rand -hex 32').optional(),
  /** A file holding the admin key (a mounted secret), read at boot; surrounding whitespace is ignored. */
  PODFLOW_ADMIN_KEY_FILE: z.string().min(1).optional(),
  // STORAGE (local | s3), STORAGE_DIR, PUBLIC_URL, FILE_URL_SECRET, FILE_URL_TTL_SECONDS, S3_*.
  ...storageConfigShape,
  MAX_REQUEST_BYTES: int(1024).default(16 * 1024 * 1024),
  /** Largest YAML definition (`POST /v1/workflows` with Content-Type application/yaml); YAML costs far more to parse than JSON. */
  MAX_YAML_BYTES: int(1024).default(1024 * 1024),
  /** Node outputs, job args and run outputs whose JSON is larger live in the object store; Redis keeps a reference. */
  OUTPUT_INLINE_MAX_BYTES: int(0).default(DEFAULT_OUTPUT_INLINE_MAX_BYTES),
  /** Parsed payloads kept in memory (LRU) so transitions and API reads of big runs skip the object store. */
  PAYLOAD_CACHE_MAX_BYTES: int(0).default(64 * 1024 * 1024),
  /** Run inputs and succeeded node records kept in memory (LRU, RunCache): immutable, so never stale. */
  RUN_CACHE_MAX_BYTES: int(0).default(64 * 1024 * 1024),
  /** Results handed to their runs' inboxes at once (each is one short Redis call; runs apply their inboxes in batches). */
  RESULTS_CONCURRENCY: int(1).default(64),
  /** Most events of one run applied in one batch (one read of what they touch, one atomic write). */
  RESULTS_BATCH_MAX: int(1).default(500),
  /**
   * Most outgoing edges of one node resolved in one atomic step: a wider fan-out readies its nodes
   * a page per step (TransitionOptions.edgePage), so no single write of one run holds Redis, and
   * every tenant on it, for long.
   */
  FANOUT_PAGE: int(1).default(250),
  /** How long a coordinator holds a run's lease without writing; after it another coordinator may take the run over. */
  RUN_LEASE_MS: int(1000).default(10_000),
  /** Most nodes one workflow may hold. */
  MAX_NODES_PER_RUN: int(1).default(10_000),
  /** Admission (orchestration/admission.ts): most executions waiting, delayed or running in `exec`; ready nodes past it wait in their runs' outboxes. */
  ADMISSION_MAX_IN_FLIGHT: int(1).default(1_000_000),
  /** Weighted fair dispatch across tenants (start-time fair queuing on `exec`); `false`: first come first served. */
  FAIR_DISPATCH: z
    .enum(['true', 'false', '1', '0'], { errorMap: () => ({ message: 'FAIR_DISPATCH is true or false' }) })
    .default('true')
    .transform((v) => v === 'true' || v === '1'),
  /** A tenant's share of `exec` under contention when not listed in TENANT_WEIGHTS. */
  TENANT_DEFAULT_WEIGHT: z.coerce.number().min(0.01).max(1000).default(1),
  /** `tenant=weight,...`: shares under contention (2 starts twice as many executions as 1). */
  TENANT_WEIGHTS: tenantNumbersEnv('TENANT_WEIGHTS', { min: 0.01, integer: false, what: 'weight' }),
  /** Most executions of one tenant waiting, delayed or running in `exec`; its ready nodes past it wait. */
  TENANT_MAX_IN_FLIGHT: int(1).default(10_000),
  /** Runs one tenant may start per minute (HTTP and the submissions queue); 0: no limit. A tenant's record may set its own. */
  TENANT_RUNS_PER_MINUTE: int(0).default(0),
  /** Runs one tenant may have started and not finished (its queued work); 0: no limit. A tenant's record may set its own. */
  TENANT_MAX_RUNS_IN_PROGRESS: int(0).default(0),
  /** `tenant=count,...`: TENANT_MAX_IN_FLIGHT for the listed tenants. */
  TENANT_MAX_IN_FLIGHT_BY_TENANT: tenantNumbersEnv('TENANT_MAX_IN_FLIGHT_BY_TENANT', { min: 1, integer: true, what: 'count' }),
  /** What one run of any tenant may ask for unless its record says otherwise (tenancy/node-limits.ts); unset: only the deployment-wide limits. */
  TENANT_MAX_NODE_TIMEOUT_SECONDS: int(1).optional(),
  TENANT_MAX_RUN_TIMEOUT_SECONDS: int(1).optional(),
  TENANT_MAX_NODE_MEMORY: memoryQuantity.optional(),
  TENANT_MAX_NODE_CPU: cpuQuantity.optional(),
  RUN_RETENTION_SECONDS: int(60).default(7 * 24 * 3600),
  /** How long a reply stream keeps a completion (and a stream nobody writes to lives): consumers must read within it. */
  REPLY_RETENTION_SECONDS: int(60).default(7 * 24 * 3600),
  /** Hosts a webhook URL may name when its tenant's record sets none: comma-separated, `*` any, `*.example.com` any subdomain. */
  WEBHOOK_ALLOWED_HOSTS: hostPatterns.default('*'),
  /** Address ranges webhooks may reach although private, loopback or link-local (refused by default), e.g. `10.20.0.0/16`. */
  WEBHOOK_ALLOWED_CIDRS: cidrList.default(''),
  /** Attempts per webhook delivery; retries back off exponentially from WEBHOOK_BACKOFF_MS. */
  WEBHOOK_MAX_ATTEMPTS: int(1).default(8),
  WEBHOOK_BACKOFF_MS: int(10).default(2000),
  /** One delivery attempt's bound: connecting, sending and the receiver's answer. */
  WEBHOOK_TIMEOUT_MS: int(100).default(10_000),
  IDEMPOTENCY_TTL_SECONDS: int(60).default(24 * 3600),
  OUTBOX_SWEEP_MS: int(100).default(2000),
  /** JSON allow/deny lists of declared packages, operator-wide and per tenant (tenancy/dependency-policy.ts). */
  DEPENDENCY_POLICY: dependencyPolicyEnv,
  /** Tenants whose nodes may ask for network egress (`network: true`): comma-separated ids, `*` for all (tenancy/egress-policy.ts). */
  EGRESS_TENANTS: egressTenantsEnv,
  /** Largest value, in JSON bytes, one expression (input binding, edge `when`, workflow `output`) may build or return. */
  EXPRESSION_MAX_BYTES: int(1024).default(8 * 1024 * 1024),
  /** Wall-clock bound of one expression evaluation. */
  EXPRESSION_TIMEOUT_MS: int(10).default(1000),
  /** Concurrent event streams and `?wait=true` executions per API key; past it `429` with Retry-After. */
  MAX_STREAMS_PER_KEY: int(1).default(100),
  /** Concurrent event streams and `?wait=true` executions of the whole coordinator process. */
  MAX_STREAMS: int(1).default(2000),
  /** Tenants with a label of their own in podflow_executions_total; the rest share `_other` (bounded cardinality). */
  METRICS_MAX_TENANTS: int(0).default(50),
  /** When set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>` (tenant ids appear in labels). */
  METRICS_TOKEN: z.string().min(16, 'METRICS_TOKEN must be at least 16 characters').optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
})
  .superRefine(checkStorageConfig)
  .superRefine(checkRedisConfig)
  .superRefine(checkKeysConfig)
  .transform(({ PODFLOW_ADMIN_KEY, PODFLOW_ADMIN_KEY_FILE, ...rest }) => ({ ...rest, adminKeyHash: adminKeyHashOf(PODFLOW_ADMIN_KEY, PODFLOW_ADMIN_KEY_FILE) }));

export type CoordinatorConfig = z.infer<typeof coordinatorConfigSchema>;

/** Tenant keys come from PODFLOW_API_KEYS, the admin API, or both; one admin key source at most. */
function checkKeysConfig(c: { PODFLOW_API_KEYS: Map<string, string>; PODFLOW_ADMIN_KEY?: string; PODFLOW_ADMIN_KEY_FILE?: string }, ctx: z.RefinementCtx): void {
  if (c.PODFLOW_ADMIN_KEY !== undefined && c.PODFLOW_ADMIN_KEY_FILE !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['PODFLOW_ADMIN_KEY_FILE'], message: 'set PODFLOW_ADMIN_KEY or PODFLOW_ADMIN_KEY_FILE, not both' });
  }
  if (c.PODFLOW_API_KEYS.size === 0 && c.PODFLOW_ADMIN_KEY === undefined && c.PODFLOW_ADMIN_KEY_FILE === undefined) {
    ctx.addIssue({ code: 'custom', path: ['PODFLOW_API_KEYS'], message: 'PODFLOW_API_KEYS is required: set it to key=tenant[,key=tenant...], or set PODFLOW_ADMIN_KEY(_FILE) and issue keys through /v1/admin' });
  }
}

/** sha256 of the admin key (the key itself is not kept), or undefined when the admin API is off. */
function adminKeyHashOf(key: string | undefined, file: string | undefined): string | undefined {
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (error) {
      throw new Error(`invalid coordinator configuration:\n  PODFLOW_ADMIN_KEY_FILE: cannot read ${file}: ${(error as Error).message}`);
    }
    if (text.length < 24) throw new Error(`invalid coordinator configuration:\n  PODFLOW_ADMIN_KEY_FILE: the key in ${file} must be at least 24 characters`);
    return hashApiKey(text);
  }
  return key === undefined ? undefined : hashApiKey(key);
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function loadCoordinatorConfig(env: NodeJS.ProcessEnv): CoordinatorConfig {
  const parsed = coordinatorConfigSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid coordinator configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}
