import { LayerResolvingDriver, ProcessDriver, type SandboxDriver } from '@podflow/sandbox';
import { createObjectStore } from '@podflow/storage';
import { connectRedis, redisConnectionPlan, startShutdownWatchdog } from '@podflow/redis';
import pino from 'pino';
import { loadWorkerConfig, type WorkerConfig } from './config';
import { layerResolver, localLayerBackend } from './layers';
import { startWorkerHttp } from './http';
import { WorkerMetrics } from './metrics';
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

async function createSandbox(config: WorkerConfig, logger: pino.Logger, metrics: WorkerMetrics): Promise<Sandbox> {
  if (config.SANDBOX_DRIVER === 'noop') {
    logger.warn('SANDBOX_DRIVER=noop: code is NOT executed; this driver exists for orchestration benchmarks only');
    return { driver: new NoopDriver(config.NOOP_DELAY_MS) };
  }
  // Layer build leases, the reaper's job lookups.
  const connection = connectRedis(config);
  const disconnect = async () => {
    connection.disconnect();
  };
  if (config.SANDBOX_DRIVER === 'kubernetes') {
    // Loaded only for this driver: @kubernetes/client-node is ~50 MiB a process-driver worker does without.
    const { createKubernetesSandbox } = await import('./kubernetes');
    const sandbox = createKubernetesSandbox(config, connection, logger, (count) => metrics.evicted(count));
    const layers = layerResolver(config, sandbox.layerBackend, connection, logger);
    return { ...sandbox, driver: new LayerResolvingDriver(sandbox.driver, layers), stop: async () => { await sandbox.stop(); await disconnect(); } };
  }
  const MIB = 1024 * 1024;
  const driver = new ProcessDriver({
    isolation: config.SANDBOX_ISOLATION,
    memoryLimitBytes: config.SANDBOX_MEMORY_MB * MIB,
    maxMemoryBytes: config.SANDBOX_MAX_MEMORY_MB * MIB,
    cpuMillis: config.SANDBOX_CPU_MILLIS,
    maxCpuMillis: config.SANDBOX_MAX_CPU_MILLIS,
    maxProcesses: config.SANDBOX_MAX_PROCESSES,
    maxOpenFiles: config.SANDBOX_MAX_OPEN_FILES,
    homeSizeBytes: config.SANDBOX_HOME_SIZE_MB * MIB,
    tmpSizeBytes: config.SANDBOX_TMP_SIZE_MB * MIB,
    shmSizeBytes: config.SANDBOX_SHM_SIZE_MB * MIB,
    egressAllowCidrs: config.SANDBOX_EGRESS_ALLOW_CIDRS,
    warmPoolSize: config.SANDBOX_WARM_POOL_SIZE,
    ...(config.PYTHON_BIN ? { pythonBin: config.PYTHON_BIN } : {}),
    logger,
  });
  const runInstaller = driver.installerRunner({
    memoryBytes: config.LAYER_INSTALL_MEMORY_MB * MIB,
    tmpSizeBytes: config.LAYER_INSTALL_TMP_MB * MIB,
    maxLayerBytes: config.LAYER_INSTALL_MAX_MB * MIB,
    maxProcesses: 256,
    cpuMillis: config.SANDBOX_MAX_CPU_MILLIS,
  });
  const layers = layerResolver(config, localLayerBackend(config, driver.interpreters, runInstaller, logger, (count) => metrics.evicted(count)), connection, logger);
  return { driver: new LayerResolvingDriver(driver, layers), init: () => driver.init(), stop: disconnect };
}

/**
 * Variables a worker must not hold: tenant API keys are the coordinator's alone. Dropped at boot so
 * no code path (a child process, a crash dump, a sandbox) can pass them on.
 */
const COORDINATOR_ONLY_VARIABLES = ['PODFLOW_API_KEYS', 'PODFLOW_ADMIN_KEY', 'PODFLOW_ADMIN_KEY_FILE'];

async function main(): Promise<void> {
  const config = loadWorkerConfig(process.env);
  const logger = pino({ name: 'podflow-worker', level: config.LOG_LEVEL });
  const dropped = COORDINATOR_ONLY_VARIABLES.filter((name) => name in process.env);
  for (const name of dropped) delete process.env[name];
  if (dropped.length > 0) logger.warn({ dropped }, 'the worker does not use these variables and dropped them; remove them from its environment');
  const metrics = new WorkerMetrics(config.SANDBOX_DRIVER);
  const sandbox = await createSandbox(config, logger, metrics);
  const { driver } = sandbox;
  const worker = new PodflowWorker({
    redis: redisConnectionPlan(config),
    prefix: config.QUEUE_PREFIX,
    workerId: config.WORKER_ID,
    concurrency: config.WORKER_CONCURRENCY,
    lockDurationMs: config.WORKER_LOCK_DURATION_MS,
    shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
    driver,
    store: createObjectStore(config),
    outputInlineMaxBytes: config.OUTPUT_INLINE_MAX_BYTES,
    startedReportDelayMs: config.STARTED_REPORT_DELAY_MS,
    logger,
    metrics,
  });
  const http = await startWorkerHttp(config.WORKER_HTTP_PORT, config.WORKER_HTTP_HOST, { ready: () => worker.readiness() }, metrics, logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, running: worker.running }, 'worker stopping');
    // Closing needs Redis; when Redis is gone too (an uninstall deletes it with the workers), exit
    // instead of waiting for the kubelet's SIGKILL.
    startShutdownWatchdog({
      ping: async () => {
        const { ready, reason } = await worker.readiness();
        if (!ready) throw new Error(reason);
      },
      onStuck: (checks) => {
        logger.error({ checks, running: worker.running }, 'Redis does not answer while the worker closes; exiting (unfinished jobs are re-delivered when their locks expire)');
        process.exit(1);
      },
    });
    worker.close().then(() => sandbox.stop?.()).then(() => new Promise((resolve) => http.close(resolve))).then(
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
