import { DEFAULT_OUTPUT_INLINE_MAX_BYTES } from '@podflow/protocol';
import { checkRedisConfig, redisConfigShape } from '@podflow/redis';
import { isCredential, normaliseCidr } from '@podflow/sandbox';
import { checkStorageConfig, storageConfigShape } from '@podflow/storage';
import { hostname } from 'node:os';
import { z } from 'zod';
import { DEFAULT_STARTED_REPORT_DELAY_MS } from './start-report';

const int = (min: number) => z.coerce.number().int().min(min);

/** An environment variable holding JSON that must match `schema`. */
function jsonOf<T extends z.ZodTypeAny>(schema: T, message: string) {
  return z.string().transform((raw, ctx): z.infer<T> => {
    try {
      const parsed = schema.safeParse(JSON.parse(raw));
      if (parsed.success) return parsed.data;
    } catch {
      // reported below
    }
    ctx.addIssue({ code: z.ZodIssueCode.custom, message });
    return z.NEVER;
  });
}

/** The worker's whole configuration, validated at boot (README "Configuration"). */
export const workerConfigSchema = z.object({
  // REDIS_URL | REDIS_CLUSTER_NODES | REDIS_SENTINELS (+ REDIS_SENTINEL_NAME), REDIS_USERNAME, REDIS_PASSWORD, REDIS_TLS, QUEUE_PREFIX.
  ...redisConfigShape,
  WORKER_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
  /** Port of /healthz, /readyz and /metrics (0: any free port, as tests with several workers on one host use). */
  WORKER_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(9090),
  WORKER_HTTP_HOST: z.string().default('0.0.0.0'),
  WORKER_CONCURRENCY: int(1).default(4),
  SANDBOX_DRIVER: z.enum(['process', 'kubernetes', 'noop']).default('process'),
  /** SANDBOX_DRIVER=noop only: how long each no-op execution takes (benchmarks and tests of dispatch: work that occupies a slot). */
  NOOP_DELAY_MS: z.coerce.number().int().min(0).max(600_000).default(0),
  SANDBOX_ISOLATION: z.enum(['auto', 'bubblewrap', 'none']).default('auto'),
  SANDBOX_MEMORY_MB: int(32).default(512),
  // Process driver limits (README "Process sandbox"); the kubernetes driver has its K8S_* twins.
  SANDBOX_MAX_MEMORY_MB: int(32).default(4096),
  SANDBOX_CPU_MILLIS: int(10).default(1000),
  SANDBOX_MAX_CPU_MILLIS: int(10).default(4000),
  SANDBOX_MAX_PROCESSES: int(8).default(64),
  SANDBOX_HOME_SIZE_MB: int(1).default(256),
  SANDBOX_TMP_SIZE_MB: int(1).default(64),
  // Warm sandboxes per runtime (Python, Node) the process driver keeps started; 0 turns the pool off.
  SANDBOX_WARM_POOL_SIZE: int(0).max(64).default(2),
  SANDBOX_SHM_SIZE_MB: int(1).default(16),
  /** Private IPv4 ranges that executions granted egress may reach (an internal mirror); none by default. */
  SANDBOX_EGRESS_ALLOW_CIDRS: z
    .string()
    .optional()
    .transform((v) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : []))
    .refine((cidrs) => cidrs.every((c) => normaliseCidr(c) !== undefined), {
      message: 'SANDBOX_EGRESS_ALLOW_CIDRS must be comma-separated IPv4 CIDRs, e.g. 10.20.0.0/16,192.168.5.10/32',
    }),
  PYTHON_BIN: z.string().optional(),
  // STORAGE (local | s3), STORAGE_DIR, PUBLIC_URL, FILE_URL_SECRET, FILE_URL_TTL_SECONDS, S3_*.
  ...storageConfigShape,
  /** Outputs whose JSON is larger are stored in the object store and sent by reference. */
  OUTPUT_INLINE_MAX_BYTES: int(0).default(DEFAULT_OUTPUT_INLINE_MAX_BYTES),
  /** `started` is reported only for executions still running after this long; quicker ones send it with their result. 0 = always, before running. */
  STARTED_REPORT_DELAY_MS: int(0).default(DEFAULT_STARTED_REPORT_DELAY_MS),
  /** How long a job lock lives without renewal; a dead worker's jobs come back after about this. */
  WORKER_LOCK_DURATION_MS: int(1000).default(30_000),
  /** How long SIGTERM waits for running executions before handing them back to the queue. */
  SHUTDOWN_GRACE_MS: int(0).default(30_000),
  // SANDBOX_DRIVER=kubernetes (README "Kubernetes driver"); the cluster comes from KUBECONFIG or the in-cluster account.
  K8S_NAMESPACE: z.string().min(1).default('podflow-sandbox'),
  K8S_IMAGE_PYTHON: z.string().min(1).default('podflow/runtime-python:local'),
  K8S_IMAGE_NODE: z.string().min(1).default('podflow/runtime-node:local'),
  K8S_IMAGE_PULL_POLICY: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
  // Warm pods per runtime kept in K8S_NAMESPACE, shared by its workers; 0 turns the pool off.
  K8S_WARM_POOL_SIZE: int(0).max(100).default(2),
  K8S_WARM_POOL_INTERVAL_MS: int(200).default(2000),
  K8S_START_TIMEOUT_MS: int(1000).default(60_000),
  K8S_RUNTIME_CLASS: z.string().min(1).optional(),
  K8S_NODE_SELECTOR: jsonOf(z.record(z.string()), 'K8S_NODE_SELECTOR must be a JSON object of strings, e.g. {"pool":"sandbox"}').optional(),
  K8S_TOLERATIONS: jsonOf(z.array(z.record(z.unknown())), 'K8S_TOLERATIONS must be a JSON array of tolerations').optional(),
  K8S_IMAGE_PULL_SECRETS: z.string().optional().transform((v) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : [])),
  K8S_DEFAULT_CPU_MILLIS: int(1).default(1000),
  K8S_MAX_CPU_MILLIS: int(1).default(4000),
  K8S_MAX_MEMORY_MB: int(32).default(4096),
  K8S_REQUEST_RATIO: z.coerce.number().gt(0).max(1).default(0.25),
  K8S_HOME_SIZE: z.string().regex(/^\d+(Ki|Mi|Gi)$/, 'K8S_HOME_SIZE must be a quantity like 256Mi').default('256Mi'),
  K8S_TMP_SIZE: z.string().regex(/^\d+(Ki|Mi|Gi)$/, 'K8S_TMP_SIZE must be a quantity like 64Mi').default('64Mi'),
  K8S_REAPER_INTERVAL_MS: int(1000).default(30_000),
  K8S_REAPER_MIN_AGE_MS: int(0).default(60_000),
  // Dependency layers (README "Dependency layers").
  /** Process driver's layer cache; default /var/cache/podflow/layers as root, else ~/.cache/podflow/layers. */
  LAYER_CACHE_DIR: z.string().min(1).optional(),
  /** Size cap of the layer cache (process) or the layer volume (kubernetes); LRU eviction past it. */
  LAYER_CACHE_MAX_MB: int(1).default(5120),
  /** A layer used more recently than this is never evicted (an execution may be about to mount it). */
  LAYER_EVICT_MIN_IDLE_MS: int(0).default(600_000),
  LAYER_INSTALL_TIMEOUT_MS: int(1000).default(300_000),
  /** Process driver: memory (tmpfs included), RAM-backed /tmp and layer size of one confined install. */
  LAYER_INSTALL_MEMORY_MB: int(64).default(2048),
  LAYER_INSTALL_TMP_MB: int(16).default(1024),
  LAYER_INSTALL_MAX_MB: int(16).default(1024),
  SANDBOX_MAX_OPEN_FILES: int(64).default(1024),
  /** Build lease TTL: a dead builder's build is taken over after about this long. */
  LAYER_LOCK_TTL_MS: int(1000).default(30_000),
  /** How long a failed install's error is served before the same layer is tried again. */
  LAYER_FAILURE_TTL_MS: int(0).default(60_000),
  /** npm lifecycle scripts (postinstall...) run package code at install time; off unless set to false. */
  LAYER_NPM_IGNORE_SCRIPTS: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  /** npm for the process driver's installs; default the npm next to this Node, else `npm` on PATH. */
  NPM_BIN: z.string().min(1).optional(),
  K8S_LAYER_VOLUME_CLAIM: z.string().min(1).default('podflow-layers'),
  K8S_LAYER_CA_CONFIGMAP: z.string().min(1).optional(),
  /**
   * Installing can run package code (an sdist's setup.py), which reads its environment: a
   * credential here would be the tenant's (the process driver drops them from installs too).
   */
  K8S_LAYER_BUILDER_ENV: jsonOf(z.record(z.string()), 'K8S_LAYER_BUILDER_ENV must be a JSON object of strings, e.g. {"PIP_INDEX_URL":"https://pypi.example/simple"}')
    .superRefine((env, ctx) => {
      for (const [name, value] of Object.entries(env)) {
        if (!isCredential(name, value)) continue;
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `K8S_LAYER_BUILDER_ENV.${name} carries a credential (a password in a URL, or a token, secret or key); installing runs package code, which could read it: give builder pods a mirror or proxy that needs none (sandbox.layers.egressAllowCIDRs opens its address)`,
        });
      }
    })
    .optional(),
  K8S_LAYER_BUILDER_CPU_MILLIS: int(1).default(1000),
  /** The builder's memory limit: its RAM-backed staging directory and /tmp count in it. */
  K8S_LAYER_BUILDER_MEMORY_MB: int(64).default(3072),
  K8S_LAYER_BUILDER_TMP_SIZE: z.string().regex(/^\d+(Ki|Mi|Gi)$/, 'K8S_LAYER_BUILDER_TMP_SIZE must be a quantity like 1Gi').default('1Gi'),
  /** The largest layer an install may write (RAM-backed, in the builder's memory). */
  K8S_LAYER_BUILDER_STAGING_SIZE: z.string().regex(/^\d+(Ki|Mi|Gi)$/, 'K8S_LAYER_BUILDER_STAGING_SIZE must be a quantity like 1Gi').default('1Gi'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
})
  .superRefine(checkStorageConfig)
  .superRefine(checkRedisConfig)
  .superRefine((config, ctx) => {
    // The builder's two RAM-backed volumes are charged to its memory: room for them and for pip.
    const needed = quantityMiB(config.K8S_LAYER_BUILDER_STAGING_SIZE) + quantityMiB(config.K8S_LAYER_BUILDER_TMP_SIZE) + 512;
    if (config.K8S_LAYER_BUILDER_MEMORY_MB < needed) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['K8S_LAYER_BUILDER_MEMORY_MB'],
        message: `K8S_LAYER_BUILDER_MEMORY_MB=${config.K8S_LAYER_BUILDER_MEMORY_MB} leaves no room: the builder's RAM-backed staging directory (K8S_LAYER_BUILDER_STAGING_SIZE) and /tmp (K8S_LAYER_BUILDER_TMP_SIZE) count in it, plus 512 MiB for the installer; give at least ${needed}`,
      });
    }
  });

/** A Ki/Mi/Gi quantity in MiB. */
function quantityMiB(quantity: string): number {
  const [, digits, unit] = /^(\d+)(Ki|Mi|Gi)$/.exec(quantity)!;
  return Number(digits) * (unit === 'Gi' ? 1024 : unit === 'Mi' ? 1 : 1 / 1024);
}

export type WorkerConfig = z.infer<typeof workerConfigSchema>;

export function loadWorkerConfig(env: NodeJS.ProcessEnv): WorkerConfig {
  const parsed = workerConfigSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid worker configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}
