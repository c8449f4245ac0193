import { KubeConfig, type V1Toleration } from '@kubernetes/client-node';
import { QUEUE_NAMES, queuePrefix } from '@podflow/protocol';
import type { RedisClient } from '@podflow/redis';
import { PodReaper } from '@podflow/sandbox';
import { KubernetesDriver, PodLayerBackend } from '@podflow/sandbox/kubernetes';
import { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { WorkerConfig } from './config';

/** Job states in which an execution may still want its pod (running, or queued for a re-delivery). */
const LIVE_STATES = new Set(['active', 'waiting', 'delayed', 'prioritized', 'waiting-children']);

/** The kubernetes driver, its layer backend and its pod reaper, from the worker's configuration. */
export function createKubernetesSandbox(config: WorkerConfig, connection: RedisClient, logger: Logger, onEvicted?: (count: number) => void) {
  const kubeConfig = new KubeConfig();
  // KUBECONFIG, ~/.kube/config, or the pod's ServiceAccount when the worker runs in the cluster.
  kubeConfig.loadFromDefault();
  const driver = new KubernetesDriver({
    kubeConfig,
    workerId: config.WORKER_ID,
    startTimeoutMs: config.K8S_START_TIMEOUT_MS,
    placement: {
      namespace: config.K8S_NAMESPACE,
      images: { python: config.K8S_IMAGE_PYTHON, node: config.K8S_IMAGE_NODE },
      imagePullPolicy: config.K8S_IMAGE_PULL_POLICY,
      runtimeClassName: config.K8S_RUNTIME_CLASS,
      nodeSelector: config.K8S_NODE_SELECTOR,
      tolerations: config.K8S_TOLERATIONS as V1Toleration[] | undefined,
      imagePullSecrets: config.K8S_IMAGE_PULL_SECRETS,
      homeSizeLimit: config.K8S_HOME_SIZE,
      tmpSizeLimit: config.K8S_TMP_SIZE,
      layerVolumeClaim: config.K8S_LAYER_VOLUME_CLAIM,
    },
    warmPoolSize: config.K8S_WARM_POOL_SIZE,
    resourcePolicy: {
      defaultCpuMillis: config.K8S_DEFAULT_CPU_MILLIS,
      defaultMemoryBytes: config.SANDBOX_MEMORY_MB * 1024 * 1024,
      maxCpuMillis: config.K8S_MAX_CPU_MILLIS,
      maxMemoryBytes: config.K8S_MAX_MEMORY_MB * 1024 * 1024,
      requestRatio: config.K8S_REQUEST_RATIO,
    },
    logger,
  });
  const layerBackend = podLayerBackend(config, kubeConfig, connection, logger, onEvicted);
  const execQueue = new Queue(QUEUE_NAMES.exec, { connection, prefix: queuePrefix(config.QUEUE_PREFIX, QUEUE_NAMES.exec) });
  const reaper = new PodReaper({
    core: driver.core,
    namespace: config.K8S_NAMESPACE,
    minAgeMs: config.K8S_REAPER_MIN_AGE_MS,
    // Execution ids are the exec jobs' ids.
    isActive: async (executionId) => LIVE_STATES.has(await execQueue.getJobState(executionId)),
    logger,
  });
  return {
    driver,
    layerBackend,
    start: () => {
      reaper.start(config.K8S_REAPER_INTERVAL_MS);
      driver.warmPool?.start(config.K8S_WARM_POOL_INTERVAL_MS);
    },
    stop: async () => {
      await driver.warmPool?.stop();
      await reaper.stop();
      await execQueue.close();
    },
  };
}

/** Layers of the kubernetes driver: a shared volume filled by builder pods. */
export function podLayerBackend(config: WorkerConfig, kubeConfig: KubeConfig, redis: RedisClient, logger: Logger, onEvicted?: (count: number) => void): PodLayerBackend {
  return new PodLayerBackend({
    ...(onEvicted ? { onEvicted } : {}),
    kubeConfig,
    redis,
    keyPrefix: `${config.QUEUE_PREFIX}:`,
    placement: {
      namespace: config.K8S_NAMESPACE,
      images: { python: config.K8S_IMAGE_PYTHON, node: config.K8S_IMAGE_NODE },
      imagePullPolicy: config.K8S_IMAGE_PULL_POLICY,
      nodeSelector: config.K8S_NODE_SELECTOR,
      tolerations: config.K8S_TOLERATIONS as V1Toleration[] | undefined,
      imagePullSecrets: config.K8S_IMAGE_PULL_SECRETS,
      volumeClaim: config.K8S_LAYER_VOLUME_CLAIM,
      caConfigMap: config.K8S_LAYER_CA_CONFIGMAP,
      env: config.K8S_LAYER_BUILDER_ENV ?? {},
      cpuMillis: config.K8S_LAYER_BUILDER_CPU_MILLIS,
      memoryBytes: config.K8S_LAYER_BUILDER_MEMORY_MB * 1024 * 1024,
      tmpSizeLimit: config.K8S_LAYER_BUILDER_TMP_SIZE,
      stagingSizeLimit: config.K8S_LAYER_BUILDER_STAGING_SIZE,
    },
    installer: { npmIgnoreScripts: config.LAYER_NPM_IGNORE_SCRIPTS },
    maxBytes: config.LAYER_CACHE_MAX_MB * 1024 * 1024,
    minIdleMs: config.LAYER_EVICT_MIN_IDLE_MS,
    workerId: config.WORKER_ID,
    logger,
  });
}
