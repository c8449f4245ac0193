// `@podflow/sandbox/kubernetes`: the parts of the sandbox library that talk to a cluster. They load
// @kubernetes/client-node (~50 MiB of RSS), so they live apart from `@podflow/sandbox`: a worker on
// the process driver never loads them, and every sandbox it spawns forks a smaller process (a
// spawn copies the worker's page tables). Pure pod helpers (specs, labels, resources) stay in the
// main entry point.
export { KubernetesDriver } from './kubernetes-driver';
export type { KubernetesDriverOptions } from './kubernetes-driver';
export { WarmPodPool } from './warm-pods';
export type { PodRuntime, WarmPodPoolOptions } from './warm-pods';
export { PodLayerBackend, IMAGE_NPM_COMMAND } from './pod-layer-backend';
export type { PodLayerBackendOptions } from './pod-layer-backend';
