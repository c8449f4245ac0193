import { LayerResolver, LocalLayerBackend, type InstallerRunner, type LayerBackend } from '@podflow/sandbox';
import { normaliseDependencies } from '@podflow/workflow';
import type { RedisClient } from '@podflow/redis';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { WorkerConfig } from './config';

/** Root needs a cache that sandbox uids can traverse (/root is 0700); anyone else keeps it at home. */
export function defaultLayerCacheDir(): string {
  return process.getuid?.() === 0 ? '/var/cache/podflow/layers' : join(homedir(), '.cache', 'podflow', 'layers');
}

/** The npm next to the Node running the worker, else whatever `npm` is on PATH. */
function defaultNpm(): string[] {
  const sibling = join(dirname(process.execPath), 'npm');
  return [existsSync(sibling) ? sibling : 'npm'];
}

/** Layers of the process driver: a local cache directory, installs confined by `runInstaller` (the driver's). */
export function localLayerBackend(config: WorkerConfig, interpreters: { python: string; node: string }, runInstaller: InstallerRunner, logger: Logger, onEvicted?: (count: number) => void): LocalLayerBackend {
  return new LocalLayerBackend({
    ...(onEvicted ? { onEvicted } : {}),
    root: config.LAYER_CACHE_DIR ?? defaultLayerCacheDir(),
    interpreters,
    commands: { python: interpreters.python, npm: config.NPM_BIN ? [config.NPM_BIN] : defaultNpm() },
    installer: { npmIgnoreScripts: config.LAYER_NPM_IGNORE_SCRIPTS },
    maxBytes: config.LAYER_CACHE_MAX_MB * 1024 * 1024,
    minIdleMs: config.LAYER_EVICT_MIN_IDLE_MS,
    hostEnv: process.env,
    runInstaller,
    builtBy: config.WORKER_ID,
    logger,
  });
}

/** The single-flight resolver in front of either backend (lock, failures and counters in Redis). */
export function layerResolver(config: WorkerConfig, backend: LayerBackend, redis: RedisClient, logger: Logger): LayerResolver {
  return new LayerResolver({
    backend,
    redis,
    keyPrefix: `${config.QUEUE_PREFIX}:`,
    normalise: normaliseDependencies,
    installTimeoutMs: config.LAYER_INSTALL_TIMEOUT_MS,
    lockTtlMs: config.LAYER_LOCK_TTL_MS,
    failureTtlMs: config.LAYER_FAILURE_TTL_MS,
    owner: config.WORKER_ID,
    logger,
  });
}
