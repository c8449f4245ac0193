import { ProcessDriver, type SandboxDriver } from '@podflow/sandbox';
import { LocalDiskStore } from '@podflow/storage';
import { Redis } from 'ioredis';
import pino from 'pino';
import { loadWorkerConfig, type WorkerConfig } from './config';
import { createKubernetesSandbox } from './kubernetes';
import { NoopDriver } from './noop-driver';
import { PodflowWorker } from './worker';

interface Sandbox {
  driver: SandboxDriver;
  /** Background duties of the driver (the kubernetes pod reaper). */
  start?: () => void;
  stop?: () => Promise<void>;
}

function createSandbox(config: WorkerConfig, logger: pino.Logger): Sandbox {
  switch (config.SANDBOX_DRIVER) {
    case 'kubernetes': {
      const connection = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
      const sandbox = createKubernetesSandbox(config, connection, logger);
      return { ...sandbox, stop: async () => { await sandbox.stop(); connection.disconnect(); } };
    }
    case 'process':
      return {
        driver: new ProcessDriver({
          isolation: config.SANDBOX_ISOLATION,
          memoryLimitBytes: config.SANDBOX_MEMORY_MB * 1024 * 1024,
          ...(config.PYTHON_BIN ? { pythonBin: config.PYTHON_BIN } : {}),
          logger,
        }),
      };
    case 'noop':
      logger.warn('SANDBOX_DRIVER=noop: code is NOT executed; this driver exists for orchestration benchmarks only');
      return { driver: new NoopDriver() };
  }
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
    store: new LocalDiskStore({ root: config.STORAGE_DIR, publicBaseUrl: config.PUBLIC_URL, secret: config.FILE_URL_SECRET, defaultTtlSeconds: config.FILE_URL_TTL_SECONDS }),
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
  if (driver instanceof ProcessDriver) logger.info({ isolation: await driver.init() }, 'process sandbox ready');
  await worker.start();
  sandbox.start?.();
}

main().catch((error: unknown) => {
  process.stderr.write(`podflow worker failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
