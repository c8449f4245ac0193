import { DEFAULT_KEY_PREFIX } from '@podflow/protocol';
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

const int = (min: number) => z.coerce.number().int().min(min);

/** `key=tenant,key2=tenant2` → map of sha256(key) → tenant. Keys are never kept in clear. */
const apiKeys = z
  .string({ required_error: 'PODFLOW_API_KEYS is required: set it to key=tenant[,key=tenant...]' })
  .transform((raw, ctx) => {
    const byHash = new Map<string, string>();
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

/** The coordinator's whole configuration, validated at boot (README "Configuration"). */
export const coordinatorConfigSchema = z.object({
  PORT: int(0).default(8080),
  HOST: z.string().default('0.0.0.0'),
  REDIS_URL: z.string().url({ message: 'REDIS_URL must be a redis:// URL, e.g. redis://127.0.0.1:6379' }),
  QUEUE_PREFIX: z.string().min(1).default(DEFAULT_KEY_PREFIX),
  PODFLOW_API_KEYS: apiKeys,
  PUBLIC_URL: z.string().url().default('http://localhost:8080'),
  STORAGE_DIR: z.string().default(join(homedir(), '.cache', 'podflow', 'files')),
  FILE_URL_SECRET: z.string().min(16, 'FILE_URL_SECRET must be at least 16 characters (share it with the workers)'),
  FILE_URL_TTL_SECONDS: int(1).default(3600),
  MAX_REQUEST_BYTES: int(1024).default(16 * 1024 * 1024),
  RESULTS_CONCURRENCY: int(1).default(16),
  RUN_RETENTION_SECONDS: int(60).default(7 * 24 * 3600),
  IDEMPOTENCY_TTL_SECONDS: int(60).default(24 * 3600),
  OUTBOX_SWEEP_MS: int(100).default(2000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type CoordinatorConfig = z.infer<typeof coordinatorConfigSchema>;

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
