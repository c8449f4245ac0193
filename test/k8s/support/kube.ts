// Helpers for suites that talk to a real Kubernetes API with @kubernetes/client-node.
import * as k8s from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';

export const SANDBOX_NAMESPACE = process.env.PODFLOW_SANDBOX_NAMESPACE ?? 'podflow-sandbox';
export const WORKER_NAMESPACE = process.env.PODFLOW_WORKER_NAMESPACE ?? 'podflow-system';
export const WORKER_SERVICE_ACCOUNT = 'podflow-worker';
export const RUNTIME_IMAGES = {
  python: process.env.PODFLOW_RUNTIME_PYTHON_IMAGE ?? 'podflow/runtime-python:local',
  node: process.env.PODFLOW_RUNTIME_NODE_IMAGE ?? 'podflow/runtime-node:local',
};
/** Every pod a suite creates carries this label, so `afterAll` can remove whatever is left. */
export const TEST_LABEL = 'podflow.dev/test';
/** The dependency layer volume's claim (k8s/manifests/sandbox/40-layer-volume.yaml). */
export const LAYER_VOLUME_CLAIM = process.env.PODFLOW_LAYER_VOLUME_CLAIM || 'podflow-layers';
/** CA bundle for layer builder pods: the local cluster's; PODFLOW_LAYER_CA_CONFIGMAP= (empty) where none is needed. */
export const LAYER_CA_CONFIGMAP = (process.env.PODFLOW_LAYER_CA_CONFIGMAP ?? 'podflow-layer-ca') || undefined;

/** The admin identity: KUBECONFIG (set by `npm run test:k8s` to the local cluster's admin.kubeconfig). */
export function adminConfig(): k8s.KubeConfig {
  if (!process.env.KUBECONFIG) throw new Error('KUBECONFIG is not set; run the Kubernetes suites with `npm run test:k8s`');
  const config = new k8s.KubeConfig();
  config.loadFromDefault();
  return config;
}

/**
 * The worker's identity. `npm run test:k8s` on the local cluster passes the kubeconfig that
 * `cluster:up` wrote (PODFLOW_WORKER_KUBECONFIG); on any other cluster a short-lived token for the
 * ServiceAccount is requested with the admin identity.
 */
export async function workerConfig(admin: k8s.KubeConfig): Promise<k8s.KubeConfig> {
  const config = new k8s.KubeConfig();
  if (process.env.PODFLOW_WORKER_KUBECONFIG) {
    config.loadFromFile(process.env.PODFLOW_WORKER_KUBECONFIG);
    return config;
  }
  const core = admin.makeApiClient(k8s.CoreV1Api);
  const { status } = await core.createNamespacedServiceAccountToken({
    namespace: WORKER_NAMESPACE,
    name: WORKER_SERVICE_ACCOUNT,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const cluster = admin.getCurrentCluster();
  if (!cluster || !status?.token) throw new Error('could not obtain a token for the worker ServiceAccount');
  config.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'podflow-worker', token: status.token }],
    contexts: [{ name: 'podflow-worker', cluster: cluster.name, user: 'podflow-worker', namespace: SANDBOX_NAMESPACE }],
    currentContext: 'podflow-worker',
  });
  return config;
}

export const uniqueName = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

/** A container security context that satisfies the restricted Pod Security profile. */
export const RESTRICTED_CONTAINER: k8s.V1SecurityContext = {
  runAsNonRoot: true,
  runAsUser: 1000,
  runAsGroup: 1000,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

export function isApiError(error: unknown): error is k8s.ApiException<unknown> & { code: number; body: string } {
  return typeof error === 'object' && error !== null && 'code' in error && 'body' in error;
}

/**
 * Waits (with a watch, not polling) until `predicate` holds for pod `name`, or the pod is deleted
 * (resolves undefined). Rejects after `timeoutMs` with the last phase seen.
 */
export function waitForPod(
  config: k8s.KubeConfig,
  namespace: string,
  name: string,
  predicate: (pod: k8s.V1Pod) => boolean,
  timeoutMs = 120_000,
): Promise<k8s.V1Pod | undefined> {
  return new Promise((resolve, reject) => {
    let last: k8s.V1Pod | undefined;
    let request: AbortController | undefined;
    let settled = false;
    const finish = (error: Error | undefined, pod?: k8s.V1Pod) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request?.abort();
      if (error) reject(error);
      else resolve(pod);
    };
    const timer = setTimeout(() => finish(new Error(`pod ${namespace}/${name} did not reach the awaited state in ${timeoutMs} ms (last phase ${last?.status?.phase ?? 'unknown'})`)), timeoutMs);
    new k8s.Watch(config)
      .watch(`/api/v1/namespaces/${namespace}/pods`, { fieldSelector: `metadata.name=${name}` }, (type, pod: k8s.V1Pod) => {
        last = pod;
        if (type === 'DELETED') finish(undefined, undefined);
        else if (predicate(pod)) finish(undefined, pod);
      }, (error) => {
        if (!settled) finish(error ?? new Error(`watch of pod ${namespace}/${name} ended early`));
      })
      .then((controller) => {
        request = controller;
        if (settled) controller.abort();
      }, (error) => finish(error));
  });
}

export const isFinished = (pod: k8s.V1Pod) => pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';

/** Deletes every pod of this test run in `namespace` and waits until they are gone. */
export async function deleteTestPods(config: k8s.KubeConfig, namespace: string, runLabel: string): Promise<void> {
  const core = config.makeApiClient(k8s.CoreV1Api);
  const selector = `${TEST_LABEL}=${runLabel}`;
  await core.deleteCollectionNamespacedPod({ namespace, labelSelector: selector, gracePeriodSeconds: 0 });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const { items } = await core.listNamespacedPod({ namespace, labelSelector: selector });
    if (items.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`pods labelled ${selector} are still present a minute after deletion`);
}

/** Resolves once pod `name` does not exist (at once if it is already gone); rejects after `timeoutMs`. */
export async function waitForPodGone(config: k8s.KubeConfig, namespace: string, name: string, timeoutMs = 60_000): Promise<void> {
  const core = config.makeApiClient(k8s.CoreV1Api);
  const watching = waitForPod(config, namespace, name, () => false, timeoutMs);
  const exists = await core.readNamespacedPod({ name, namespace }).then(() => true, () => false);
  if (!exists) {
    watching.catch(() => undefined);
    return;
  }
  await watching;
}

/** Polls `check` every 250 ms until it is true; throws naming `what` after `timeoutMs`. */
export async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}
