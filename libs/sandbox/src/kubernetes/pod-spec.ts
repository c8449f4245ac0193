import { createHash } from 'node:crypto';
import type { V1Pod, V1PodSecurityContext, V1PodSpec, V1SecurityContext, V1Toleration } from '@kubernetes/client-node';
import type { Language } from '@podflow/protocol';
import { LAYER_MOUNT_PATH, layerEnv, type Ecosystem } from '../layers/layer';
import { ANNOTATIONS, EGRESS_GRANTED, LABELS, MANAGED_BY, SANDBOX_ROLE, WARM_ROLE, executionLabel, labelValue, podNameFor } from './pod-identity';
import type { PodResources } from './resources';

/** Where the runtime images (k8s/images) keep the runners, and the sandbox user they run as. */
export const RUNNER_DIR = '/opt/podflow/runner';
export const SANDBOX_UID = 1000;
export const SANDBOX_HOME = '/home/user';
export const CONTAINER_NAME = 'sandbox';

/** Cluster-wide pod settings from the worker's configuration. */
export interface PodPlacement {
  namespace: string;
  images: { python: string; node: string };
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** e.g. gVisor (`gvisor`) or Kata; unset uses the cluster's default runtime. */
  runtimeClassName?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: V1Toleration[];
  imagePullSecrets?: string[];
  /** Sizes of the RAM-backed `/home/user` and `/tmp` emptyDirs (Kubernetes quantities; they count toward the memory limit). */
  homeSizeLimit: string;
  tmpSizeLimit: string;
  /** The PersistentVolumeClaim holding dependency layers; needed only by nodes with dependencies. */
  layerVolumeClaim?: string;
}

/** Pod-level security of every podflow pod (sandboxes and layer builders): the restricted Pod Security profile. */
export const RESTRICTED_POD_SECURITY: V1PodSecurityContext = {
  runAsNonRoot: true,
  runAsUser: SANDBOX_UID,
  runAsGroup: SANDBOX_UID,
  fsGroup: SANDBOX_UID,
  seccompProfile: { type: 'RuntimeDefault' },
};

/** Container-level security of every podflow pod: no privilege, no capability, read-only root. */
export const RESTRICTED_CONTAINER_SECURITY: V1SecurityContext = {
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  privileged: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
};

/** Node selector, tolerations and pull secrets, where the worker's configuration sets them. */
export function schedulingOf(placement: Pick<PodPlacement, 'nodeSelector' | 'tolerations' | 'imagePullSecrets'>): Partial<V1PodSpec> {
  return {
    ...(placement.nodeSelector ? { nodeSelector: placement.nodeSelector } : {}),
    ...(placement.tolerations ? { tolerations: placement.tolerations } : {}),
    ...(placement.imagePullSecrets?.length ? { imagePullSecrets: placement.imagePullSecrets.map((name) => ({ name })) } : {}),
  };
}

export interface SandboxPodInput {
  executionId: string;
  tenantId: string;
  runId: string;
  nodeId: string;
  attempt: number;
  workerId: string;
  language: Language;
  resources: PodResources;
  /** Requests as a fraction of limits. */
  requestRatio: number;
  /** The pod's backstop: Kubernetes kills it after this many seconds whatever the worker does. */
  activeDeadlineSeconds: number;
  /** Epoch ms after which the reaper may delete the pod. */
  deadlineAt: number;
  /** The dependency layer to mount read-only at `LAYER_MOUNT_PATH` (its directory on the layer volume). */
  layer?: { key: string; ecosystem: Ecosystem };
  /** The tenant was granted egress: the pod carries the label the egress NetworkPolicy selects. */
  network?: boolean;
}

/** The runner command inside the runtime image. Node's heap stops at 75% of the memory limit, so
 * V8 fails with its own "heap out of memory" before the kernel's OOM killer has to step in. */
export function runnerCommand(language: Language, memoryBytes: number): string[] {
  if (language === 'python') return ['python3', '-I', '-u', `${RUNNER_DIR}/podflow_runner.py`];
  const heapMiB = Math.max(16, Math.floor((memoryBytes * 0.75) / 1024 / 1024));
  return ['node', `--max-old-space-size=${heapMiB}`, `${RUNNER_DIR}/node-runner.js`];
}

/**
 * The pod of one execution. Everything a hardened sandbox needs is here, and every pod passes the
 * restricted Pod Security profile: non-root, no privilege escalation, all capabilities dropped,
 * seccomp RuntimeDefault, read-only root, no service-account token, no service links. The runner
 * is the container's main process and reads its request from stdin (attach), so an OOM kill is
 * the container's own `OOMKilled` state.
 */
export function buildSandboxPod(input: SandboxPodInput, placement: PodPlacement): V1Pod {
  const { cpuMillis, memoryBytes } = input.resources;
  const image = input.language === 'python' ? placement.images.python : placement.images.node;
  const requestCpu = Math.max(1, Math.floor(cpuMillis * input.requestRatio));
  const requestMemory = Math.max(16 * 1024 * 1024, Math.floor(memoryBytes * input.requestRatio));
  if (input.layer && !placement.layerVolumeClaim) throw new Error('buildSandboxPod: a dependency layer needs placement.layerVolumeClaim (K8S_LAYER_VOLUME_CLAIM)');
  const layerVars = input.layer ? layerEnv(input.layer.ecosystem, LAYER_MOUNT_PATH) : {};
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podNameFor(input.executionId),
      namespace: placement.namespace,
      labels: {
        [LABELS.managedBy]: MANAGED_BY,
        [LABELS.role]: SANDBOX_ROLE,
        [LABELS.tenant]: labelValue(input.tenantId),
        [LABELS.run]: labelValue(input.runId),
        [LABELS.node]: labelValue(input.nodeId),
        [LABELS.execution]: executionLabel(input.executionId),
        [LABELS.attempt]: String(input.attempt),
        [LABELS.worker]: labelValue(input.workerId),
        ...(input.network ? { [LABELS.egress]: EGRESS_GRANTED } : {}),
      },
      annotations: {
        [ANNOTATIONS.executionId]: input.executionId,
        [ANNOTATIONS.tenantId]: input.tenantId,
        [ANNOTATIONS.deadline]: new Date(input.deadlineAt).toISOString(),
      },
    },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      // Without egress no DNS is needed (this also avoids MissingClusterDNS); with it, cluster DNS,
      // which the egress policy allows, not the node's resolver (often a private or link-local address).
      dnsPolicy: input.network ? 'ClusterFirst' : 'Default',
      terminationGracePeriodSeconds: 0,
      activeDeadlineSeconds: input.activeDeadlineSeconds,
      securityContext: RESTRICTED_POD_SECURITY,
      ...(placement.runtimeClassName ? { runtimeClassName: placement.runtimeClassName } : {}),
      ...schedulingOf(placement),
      containers: [
        {
          name: CONTAINER_NAME,
          image,
          imagePullPolicy: placement.imagePullPolicy,
          command: runnerCommand(input.language, memoryBytes),
          workingDir: SANDBOX_HOME,
          // The request arrives on stdin over an attach stream; stdinOnce closes it when that stream ends.
          stdin: true,
          stdinOnce: true,
          tty: false,
          env: [
            { name: 'HOME', value: SANDBOX_HOME },
            { name: 'TMPDIR', value: '/tmp' },
            { name: 'LANG', value: 'C.UTF-8' },
            { name: 'PYTHONDONTWRITEBYTECODE', value: '1' },
            { name: 'MALLOC_ARENA_MAX', value: '2' },
            ...Object.entries(layerVars).map(([name, value]) => ({ name, value })),
          ],
          securityContext: RESTRICTED_CONTAINER_SECURITY,
          resources: {
            requests: { cpu: `${requestCpu}m`, memory: String(requestMemory) },
            limits: { cpu: `${cpuMillis}m`, memory: String(memoryBytes) },
          },
          volumeMounts: [
            { name: 'home', mountPath: SANDBOX_HOME },
            { name: 'tmp', mountPath: '/tmp' },
            // Only this layer's directory of the shared volume, read-only.
            ...(input.layer ? [{ name: 'layer', mountPath: LAYER_MOUNT_PATH, subPath: input.layer.key, readOnly: true }] : []),
          ],
        },
      ],
      volumes: [
        // RAM-backed, so the size is a hard limit (a tmpfs of that size, counted in the memory
        // limit, as on the process driver). On disk a sizeLimit is only checked by the kubelet's
        // periodic scan: the code could fill the node's disk until then, and its eviction would
        // read as SANDBOX_LOST, a platform failure retried for free (red-team finding).
        { name: 'home', emptyDir: { medium: 'Memory', sizeLimit: placement.homeSizeLimit } },
        { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: placement.tmpSizeLimit } },
        ...(input.layer ? [{ name: 'layer', persistentVolumeClaim: { claimName: placement.layerVolumeClaim!, readOnly: true } }] : []),
      ],
    },
  };
}

/**
 * A warm pod: an execution's pod with the default resources, no layer and no egress, started
 * before any execution exists. Nothing in it belongs to a tenant: its labels say only its runtime,
 * and it has no deadline until a claim sets the execution's (`claimPatch`).
 */
export function buildWarmPod(runtime: 'python' | 'node', resources: PodResources, requestRatio: number, placement: PodPlacement, name: string, workerId: string): V1Pod {
  const pod = warmPodOf(runtime, resources, requestRatio, placement, name, workerId);
  pod.metadata!.labels![LABELS.template] = warmTemplate(runtime, resources, requestRatio, placement);
  return pod;
}

/**
 * The hash of what a warm pod of `runtime` is, as this worker builds it: image, runner command,
 * resources, security context, volumes, runtime class, scheduling. A worker claims only pods of its
 * own template, so a pod built before an operator changed any of these (gVisor turned on, a fixed
 * runner image, a dedicated node pool) never runs code of a worker configured after (red-team
 * finding); such pods are replaced once they are stale (WarmPodPool).
 */
export function warmTemplate(runtime: 'python' | 'node', resources: PodResources, requestRatio: number, placement: PodPlacement): string {
  const spec = warmPodOf(runtime, resources, requestRatio, placement, 'podflow-warm-template', 'template').spec;
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 20);
}

function warmPodOf(runtime: 'python' | 'node', resources: PodResources, requestRatio: number, placement: PodPlacement, name: string, workerId: string): V1Pod {
  const pod = buildSandboxPod(
    {
      executionId: name,
      tenantId: 'none',
      runId: 'none',
      nodeId: 'none',
      attempt: 0,
      workerId,
      language: runtime === 'python' ? 'python' : 'javascript',
      resources,
      requestRatio,
      activeDeadlineSeconds: 1,
      deadlineAt: 0,
    },
    placement,
  );
  pod.metadata = {
    name,
    namespace: placement.namespace,
    labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.role]: WARM_ROLE, [LABELS.runtime]: runtime, [LABELS.worker]: labelValue(workerId) },
    annotations: {},
  };
  delete pod.spec!.activeDeadlineSeconds;
  // A waiting Node runner compiles its transforms on sample code meanwhile (node-runner.ts).
  if (runtime === 'node') pod.spec!.containers[0]!.command!.push('--prewarm');
  return pod;
}

/**
 * What a claim writes on a warm pod: it becomes the pod of this one execution, with the identity a
 * created pod would have had, the runner's nonce, and its deadline (`activeDeadlineSeconds` counts
 * from the pod's start, so WarmPodPool adds the time the pod waited).
 */
export type WarmPodClaim = Pick<SandboxPodInput, 'executionId' | 'tenantId' | 'runId' | 'nodeId' | 'attempt' | 'workerId' | 'activeDeadlineSeconds' | 'deadlineAt'> & { nonce: string };

/**
 * The JSON patch of a claim. Its first operation tests that the pod is still waiting (`role` is
 * `warm`): the API server applies a JSON patch atomically, so of several workers claiming one pod
 * exactly one succeeds, and the others get an error and try another pod or start cold.
 */
export function claimPatch(claim: WarmPodClaim): object[] {
  const label = (key: string) => `/metadata/labels/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
  return [
    { op: 'test', path: label(LABELS.role), value: WARM_ROLE },
    { op: 'replace', path: label(LABELS.role), value: SANDBOX_ROLE },
    { op: 'add', path: label(LABELS.tenant), value: labelValue(claim.tenantId) },
    { op: 'add', path: label(LABELS.run), value: labelValue(claim.runId) },
    { op: 'add', path: label(LABELS.node), value: labelValue(claim.nodeId) },
    { op: 'add', path: label(LABELS.execution), value: executionLabel(claim.executionId) },
    { op: 'add', path: label(LABELS.attempt), value: String(claim.attempt) },
    { op: 'add', path: label(LABELS.worker), value: labelValue(claim.workerId) },
    // A warm pod has no annotations (the API server drops an empty map, so there is no parent to
    // add keys to): the whole map is set.
    {
      op: 'add',
      path: '/metadata/annotations',
      value: {
        [ANNOTATIONS.executionId]: claim.executionId,
        [ANNOTATIONS.tenantId]: claim.tenantId,
        [ANNOTATIONS.deadline]: new Date(claim.deadlineAt).toISOString(),
        [ANNOTATIONS.nonce]: claim.nonce,
      },
    },
    { op: 'add', path: '/spec/activeDeadlineSeconds', value: claim.activeDeadlineSeconds },
  ];
}
