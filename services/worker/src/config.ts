import { DEFAULT_KEY_PREFIX } from '@podflow/protocol';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { z } from 'zod';

const int = (min: number) => z.coerce.number().int().min(min);

/** The worker's whole configuration, validated at boot (README "Configuration"). */
export const workerConfigSchema = z.object({
  REDIS_URL: z.string().url({ message: 'REDIS_URL must be a redis:// URL, e.g. redis://127.0.0.1:6379' }),
  QUEUE_PREFIX: z.string().min(1).default(DEFAULT_KEY_PREFIX),
  WORKER_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
  WORKER_CONCURRENCY: int(1).default(4),
  SANDBOX_DRIVER: z.enum(['process', 'noop']).default('process'),
  SANDBOX_ISOLATION: z.enum(['auto', 'bubblewrap', 'none']).default('auto'),
  SANDBOX_MEMORY_MB: int(32).default(512),
  PYTHON_BIN: z.string().optional(),
  STORAGE_DIR: z.string().default(join(homedir(), '.cache', 'podflow', 'files')),
  PUBLIC_URL: z.string().url().default('http://localhost:8080'),
  FILE_URL_SECRET: z.string().min(16, 'FILE_URL_SECRET must be at least 16 characters (share it with the coordinator)'),
  FILE_URL_TTL_SECONDS: int(1).default(3600),
  /** How long a job lock lives without renewal; a dead worker's jobs come back after about this. */
  WORKER_LOCK_DURATION_MS: int(1000).default(30_000),
  /** How long SIGTERM waits for running executions before handing them back to the queue. */
  SHUTDOWN_GRACE_MS: int(0).default(30_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type WorkerConfig = z.infer<typeof workerConfigSchema>;

export function loadWorkerConfig(env: NodeJS.ProcessEnv): WorkerConfig {
  const parsed = workerConfigSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid worker configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}
