import { LayerResolvingDriver, ProcessDriver, type SandboxDriver } from '@podflow/sandbox';
import { createObjectStore } from '@podflow/storage';
import { Redis } from 'ioredis';
import pino from 'pino';
import { loadWorkerConfig, type WorkerConfig } from './config';
import { createKubernetesSandbox } from './kubernetes';
import { layerResolver, localLayerBackend } from './layers';
import { NoopDriver } from './noop-driver';
import { PodflowWorker } from './worker';

interface Sandbox {
  driver: SandboxDriver;
  /** Probes the host once (the process driver's isolation); its report is logged. */
  init?: () => Promise<unknown>;
  /** Background duties of the driver (the kubernetes pod reaper). */
  start?: () => void;
  stop?: () => Promise<void>;
}

function createSandbox(config: WorkerConfig, logger: pino.Logger): Sandbox {
  if (config.SANDBOX_DRIVER === 'noop') {
    logger.warn('SANDBOX_DRIVER=noop: code is NOT executed; this driver exists for orchestration benchmarks only');
    return { driver: new NoopDriver() };
  }
  // Layer build leases, the reaper's job lookups.
  const connection = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
  const disconnect = async () => {
    connection.disconnect();
  };
  if (config.SANDBOX_DRIVER === 'kubernetes') {
    const sandbox = createKubernetesSandbox(config, connection, logger);
    const layers = layerResolver(config, sandbox.layerBackend, connection, logger);
    return { ...sandbox, driver: new LayerResolvingDriver(sandbox.driver, layers), stop: async () => { await sandbox.stop(); await disconnect(); } };
  }
  const driver = new ProcessDriver({
    isolation: config.SANDBOX_ISOLATION,
    memoryLimitBytes: config.SANDBOX_MEMORY_MB * 1024 * 1024,
    ...(config.PYTHON_BIN ? { pythonBin: config.PYTHON_BIN } : {}),
    logger,
  });
  const layers = layerResolver(config, localLayerBackend(config, driver.interpreters, logger), connection, logger);
  return { driver: new LayerResolvingDriver(driver, layers), init: () => driver.init(), stop: disconnect };
}

async function main(): Promise<void> {
  const config = loadWorkerConfig(process.env);
  const logger = pino({ name: 'podflow-worker', level: config.LOG_LEVEL });
  const sandbox = createSandbox(config, logger);
  const { driver } = sandbox;
  const worker = new PodflowWorker({
    redisUrl: config.REDIS_URL,
    prefix: config.QUEUE_PREFIX,
    workerId: config.WORKER_ID,
    concurrency: config.WORKER_CONCURRENCY,
    lockDurationMs: config.WORKER_LOCK_DURATION_MS,
    shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
    driver,
    store: createObjectStore(config),
    outputInlineMaxBytes: config.OUTPUT_INLINE_MAX_BYTES,
    logger,
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'worker stopping');
    worker.close().then(() => sandbox.stop?.()).then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, 'worker did not stop cleanly');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (sandbox.init) logger.info({ isolation: await sandbox.init() }, 'process sandbox ready');
  await worker.start();
  sandbox.start?.();
}

main().catch((error: unknown) => {
  process.stderr.write(`podflow worker failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
