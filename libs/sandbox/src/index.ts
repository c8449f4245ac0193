/**
 * @podflow/sandbox: the `SandboxDriver` interface workers run executions through, and the
 * `process` driver (one machine: a child process wrapped in bubblewrap on Linux).
 *
 * ```ts
 * import { ProcessDriver } from '@podflow/sandbox';
 *
 * const driver = new ProcessDriver({ isolation: 'auto', memoryLimitBytes: 512 * 1024 * 1024, logger });
 * await driver.init(); // probes bwrap/prlimit once; { isolation: 'bubblewrap', rlimits: true, ... }
 * const outcome = await driver.execute(request, abortController.signal);
 * try {
 *   for (const file of outcome.files) await store.put({ key, body: file.open() });
 * } finally {
 *   await outcome.dispose(); // removes the execution's directory
 * }
 * await driver.close();
 * ```
 */
export type { CollectedFile, LayerUse, SandboxDriver, SandboxOutcome, SandboxRequest } from './driver';
export { ProcessDriver } from './process/process-driver';
export type { ProcessDriverOptions } from './process/process-driver';
export type { SandboxLogger } from './driver';
export { NOT_ISOLATED_WARNING } from './process/isolation-plan';
export type { IsolationMode, IsolationReport } from './process/isolation-plan';
export { parseMemoryQuantity } from './limits';
export { DEFAULT_PROCESS_LIMITS, rlimitsFor } from './process/rlimits';
export type { ExecutionRlimits, ProcessLimits } from './process/rlimits';
export { buildBubblewrapArgs, SANDBOX_HOME, SANDBOX_RUNNER_PATHS } from './process/bubblewrap';
export type { BubblewrapSpec, RootEntry, SyntheticEtc } from './process/bubblewrap';
export { collectFiles } from './process/file-collect';
export type { FileCollectLimits, FileCollectResult, RejectedFile } from './process/file-collect';
export { DEFAULT_SANDBOX_UIDS } from './process/uid-pool';
export type { UidRange } from './process/uid-pool';
export { buildSandboxPod, buildWarmPod, claimPatch, runnerCommand, CONTAINER_NAME, RUNNER_DIR } from './kubernetes/pod-spec';
export type { PodPlacement, SandboxPodInput, WarmPodClaim } from './kubernetes/pod-spec';
export { PodReaper } from './kubernetes/pod-reaper';
export type { PodReaperOptions, ReapReason } from './kubernetes/pod-reaper';
export { ANNOTATIONS, LABELS, SANDBOX_SELECTOR, WARM_ROLE, executionLabel, labelValue, podNameFor, warmSelector } from './kubernetes/pod-identity';
export { DEFAULT_POD_RESOURCE_POLICY, parseCpuQuantity, resolvePodResources } from './kubernetes/resources';
export type { PodResourcePolicy, PodResources } from './kubernetes/resources';
export { podStage, startFailureReason } from './kubernetes/pod-state';
export { LAYER_MOUNT_PATH, LAYER_MANIFEST_FILE, layerEnv, layerKey } from './layers/layer';
export type { Ecosystem, LayerManifest, LayerSpec, ResolvedLayer } from './layers/layer';
export { LayerResolver } from './layers/layer-resolver';
export type { LayerBackend, LayerResolverOptions } from './layers/layer-resolver';
export { LayerResolvingDriver } from './layers/layered-driver';
export { LocalLayerBackend } from './layers/local-layer-backend';
export type { LocalLayerBackendOptions } from './layers/local-layer-backend';
export { chooseEvictions } from './layers/eviction';
export type { LayerUsage } from './layers/eviction';
export { installerArgv, installerEnv, installerOutputTail, isCredential } from './layers/installer';
export type { InstallerCommands, InstallerEnding, InstallerOptions, InstallerRun, InstallerRunner } from './layers/installer';
export { LAYER_BUILDER_SELECTOR, buildLayerBuilderPod, layerBuilderPodName, manifestFromLog } from './kubernetes/layer-builder-spec';
export type { LayerBuilderPlacement } from './kubernetes/layer-builder-spec';
export { BLOCKED_EGRESS_CIDRS, normaliseCidr } from './process/egress-routes';
export { buildSeccompFilter, BLOCKED_SYSCALLS } from './process/seccomp';
