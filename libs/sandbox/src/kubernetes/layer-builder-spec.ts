import type { V1Container, V1Pod, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { LayerManifest } from '../layers/layer';
import { LABELS, MANAGED_BY, labelValue } from './pod-identity';
import { RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY, schedulingOf, type PodPlacement } from './pod-spec';

export const LAYER_BUILDER_ROLE = 'layer-builder';
/** The builder pod's containers, in the order they run: two init containers, then the publisher. */
export const LAYER_PREPARE_CONTAINER = 'prepare';
export const LAYER_INSTALL_CONTAINER = 'install';
export const LAYER_BUILDER_CONTAINER = 'builder';
/** Selects every layer builder pod (their NetworkPolicy, the reaper and tests use it). */
export const LAYER_BUILDER_SELECTOR = `${LABELS.managedBy}=${MANAGED_BY},${LABELS.role}=${LAYER_BUILDER_ROLE}`;
/** Where builder pods mount the layer volume (read-write only in the containers that run no package code). */
export const LAYERS_VOLUME_PATH = '/layers';
/** Where the prepare container tells the install container the layer is already published. */
const FLAGS_DIR = '/podflow-flags';
const CA_DIR = '/etc/podflow/ca';
export const MANIFEST_BEGIN = '<<<PODFLOW-LAYER-MANIFEST';
export const MANIFEST_END = 'PODFLOW-LAYER-MANIFEST>>>';

/** Cluster-wide settings of builder pods (worker configuration). */
export interface LayerBuilderPlacement extends Pick<PodPlacement, 'namespace' | 'images' | 'imagePullPolicy' | 'nodeSelector' | 'tolerations' | 'imagePullSecrets'> {
  /** The PersistentVolumeClaim holding the layers (ReadWriteMany on multi-node clusters). */
  volumeClaim: string;
  /** A ConfigMap with `ca.crt` that installers must trust (TLS-inspecting egress proxies). */
  caConfigMap?: string;
  /** Extra environment for the installers, e.g. PIP_INDEX_URL or npm_config_registry. */
  env: Record<string, string>;
  cpuMillis: number;
  /** The builder's memory limit: its two RAM-backed volumes count in it, plus pip or npm itself. */
  memoryBytes: number;
  /** Size of the install's RAM-backed /tmp (pip and npm caches, wheels being built). */
  tmpSizeLimit: string;
  /** Size of the RAM-backed directory the install writes the layer into: the largest layer (default 1Gi). */
  stagingSizeLimit?: string;
}

/** Where the publisher sees what the install wrote (read-only). */
const STAGING_SCRATCH = '/podflow-staging';
/** The largest layer an install may write, by default. */
export const DEFAULT_STAGING_SIZE = '1Gi';

export interface LayerBuilderInput {
  key: string;
  language: 'python' | 'node';
  /** The installer's argv, writing into `staging`. */
  installer: string[];
  /** Directory on the volume the build goes into; renamed to `/layers/<key>` when complete. */
  staging: string;
  /** The manifest to publish, with `sizeBytes` filled in by the script. */
  manifest: Omit<LayerManifest, 'sizeBytes'>;
  workerId: string;
  activeDeadlineSeconds: number;
}

/** The builder pod's name: one per layer, so a second worker adopts a running build instead of racing it. */
export function layerBuilderPodName(key: string): string {
  return `podflow-layer-${key.slice(0, 40)}`;
}

/**
 * A build in three containers, because installing runs package code (pip runs an sdist's setup.py;
 * the package is the tenant's choice) and the layer volume holds every tenant's layers:
 * - `prepare` (no package code; the volume read-only): tells `install` when the layer is published
 *   already;
 * - `install` (package code): runs the installer into a RAM-backed directory of its own, with a
 *   RAM-backed /tmp; it mounts nothing of the layer volume;
 * - `builder` (no package code; the volume read-write): copies what was installed into a staging
 *   directory on the volume, makes it readable, writes the manifest last, publishes with one
 *   rename and prints the manifest between markers for the worker to read.
 * Package code can neither change a published layer nor plant one under a key a later build
 * would adopt (a red-team finding: with one container the whole volume was writable to
 * setup.py), and what it writes is bounded by sizes, not by an eviction after the fact (a review
 * finding: its staging directory on the volume and a disk-backed /tmp had no bound). A builder
 * killed at any point leaves at most a staging directory, never `/layers/<key>`.
 */
export const PREPARE_SCRIPT = `set -u
key=$1
if [ -f "${LAYERS_VOLUME_PATH}/$key/.podflow-layer.json" ]; then echo "layer $key is already published"; : > ${FLAGS_DIR}/published; fi
exit 0
`;

/** The install container: the installer, unless the layer is already published. */
export const INSTALL_SCRIPT = `set -u
if [ -f ${FLAGS_DIR}/published ]; then exit 0; fi
exec "$@"
`;

/**
 * The publisher. What it copies was written by package code: links are copied as links, never
 * followed (cp -P; chmod -R and du do not follow them either), hard links stay links and holes
 * stay holes (so the copy is no larger than the RAM-backed original), and the manifest is
 * removed before it is written, so a planted link named like it cannot redirect the write.
 */
export const BUILDER_SCRIPT = `set -u
key=$1; staging=$2
final=${LAYERS_VOLUME_PATH}/$key
emit() { echo '${MANIFEST_BEGIN}'; cat "$final/.podflow-layer.json"; echo; echo '${MANIFEST_END}'; }
if [ -f "$final/.podflow-layer.json" ]; then echo "layer $key is already published"; emit; exit 0; fi
mkdir -p "$(dirname "$staging")" && rm -rf "$staging" && mkdir "$staging" || { echo "cannot create $staging on the layer volume" >&2; exit 70; }
if ! cp -R -P --preserve=mode,timestamps,links --sparse=always ${STAGING_SCRATCH}/. "$staging/"; then rm -rf "$staging"; echo "could not copy the installed layer to $staging" >&2; exit 73; fi
chmod -R a+rX,go-w "$staging"
size=$(du -sb "$staging" | cut -f1)
rm -rf "$staging/.podflow-layer.json"
printf '%s' "$PODFLOW_LAYER_MANIFEST" | sed "s/\\"sizeBytes\\":0/\\"sizeBytes\\":$size/" > "$staging/.podflow-layer.json"
chmod 644 "$staging/.podflow-layer.json"
if ! mv -T "$staging" "$final" 2>/dev/null; then
  if [ -f "$final/.podflow-layer.json" ]; then rm -rf "$staging"; else echo "could not publish $final" >&2; exit 71; fi
fi
emit
`;

/**
 * The pod that builds one layer. Like sandbox pods it passes the restricted Pod Security profile
 * and runs the same runtime image (so compiled packages match the interpreter); it is the only
 * podflow pod allowed to reach package registries (its own NetworkPolicy,
 * k8s/manifests/sandbox/30-layer-builder-network-policy.yaml). Of its three containers
 * (PREPARE_SCRIPT, INSTALL_SCRIPT, BUILDER_SCRIPT) only `install` runs package code, and it mounts
 * nothing of the layer volume, only RAM-backed volumes of set sizes; it alone gets the installer's
 * environment.
 */
export function buildLayerBuilderPod(input: LayerBuilderInput, placement: LayerBuilderPlacement): V1Pod {
  const ca = placement.caConfigMap ? `${CA_DIR}/ca.crt` : undefined;
  const image = input.language === 'python' ? placement.images.python : placement.images.node;
  assertStagingPath(input.staging);
  const flags = { name: 'flags', mountPath: FLAGS_DIR };
  return layerPod(placement, {
    name: layerBuilderPodName(input.key),
    workerId: input.workerId,
    layerLabel: input.key.slice(0, 63),
    annotations: { 'podflow.dev/layer-key': input.key, 'podflow.dev/specs': input.manifest.specs.join(' ') },
    activeDeadlineSeconds: input.activeDeadlineSeconds,
    initContainers: [
      layerContainer(placement, {
        name: LAYER_PREPARE_CONTAINER,
        image,
        command: ['sh', '-c', PREPARE_SCRIPT, 'podflow-layer-prepare', input.key],
        env: {},
        volumeMounts: [{ name: 'layers', mountPath: LAYERS_VOLUME_PATH, readOnly: true }, flags],
      }),
      layerContainer(placement, {
        name: LAYER_INSTALL_CONTAINER,
        image,
        command: ['sh', '-c', INSTALL_SCRIPT, 'podflow-layer-install', ...input.installer],
        env: {
          HOME: '/tmp/home',
          TMPDIR: '/tmp',
          LANG: 'C.UTF-8',
          PIP_NO_INPUT: '1',
          PIP_DISABLE_PIP_VERSION_CHECK: '1',
          npm_config_cache: '/tmp/home/.npm',
          npm_config_update_notifier: 'false',
          ...(ca ? { PIP_CERT: ca, NODE_EXTRA_CA_CERTS: ca, SSL_CERT_FILE: ca, REQUESTS_CA_BUNDLE: ca } : {}),
          ...placement.env,
        },
        workingDir: '/tmp',
        volumeMounts: [
          // A RAM-backed directory at the path the installer writes to; nothing of the layer volume.
          { name: 'staging', mountPath: input.staging },
          { name: 'tmp', mountPath: '/tmp' },
          { ...flags, readOnly: true },
          ...(placement.caConfigMap ? [{ name: 'ca', mountPath: CA_DIR, readOnly: true }] : []),
        ],
      }),
    ],
    containers: [
      layerContainer(placement, {
        name: LAYER_BUILDER_CONTAINER,
        image,
        command: ['sh', '-c', BUILDER_SCRIPT, 'podflow-layer-publish', input.key, input.staging],
        env: { LANG: 'C.UTF-8', PODFLOW_LAYER_MANIFEST: JSON.stringify({ ...input.manifest, sizeBytes: 0 }) },
        volumeMounts: [
          { name: 'layers', mountPath: LAYERS_VOLUME_PATH },
          { name: 'staging', mountPath: STAGING_SCRATCH, readOnly: true },
        ],
      }),
    ],
    volumes: [
      { name: 'flags', emptyDir: { sizeLimit: '1Mi' } },
      // RAM-backed, so their sizes are hard limits (counted in the builder's memory), as on the
      // process driver; on disk only the kubelet's later scan and an eviction would bound them.
      { name: 'staging', emptyDir: { medium: 'Memory', sizeLimit: placement.stagingSizeLimit ?? DEFAULT_STAGING_SIZE } },
      { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: placement.tmpSizeLimit } },
      ...(placement.caConfigMap ? [{ name: 'ca', configMap: { name: placement.caConfigMap } }] : []),
    ],
  });
}

/** `staging` must be one directory under LAYERS_VOLUME_PATH/.building/: the publisher rm -rf's it on the shared volume. */
function assertStagingPath(staging: string): void {
  const prefix = `${LAYERS_VOLUME_PATH}/.building/`;
  const rest = staging.startsWith(prefix) ? staging.slice(prefix.length) : '';
  if (!/^[A-Za-z0-9._-]+$/.test(rest) || rest === '.' || rest === '..') throw new Error(`the staging directory ${staging} is not one directory under ${prefix}`);
}

/**
 * Removes evicted layers from the volume (each unpublished by one rename first, so a lookup never
 * sees half a layer) and staging directories of builders dead for two hours.
 */
export const CLEANUP_SCRIPT = `set -u
mkdir -p ${LAYERS_VOLUME_PATH}/.trash
for key in "$@"; do mv -T "${LAYERS_VOLUME_PATH}/$key" "${LAYERS_VOLUME_PATH}/.trash/$key-$$" 2>/dev/null; done
rm -rf ${LAYERS_VOLUME_PATH}/.trash/*
find ${LAYERS_VOLUME_PATH}/.building -mindepth 1 -maxdepth 1 -mmin +120 -exec rm -rf {} + 2>/dev/null
exit 0
`;

/** A short pod that deletes `keys` from the layer volume (`CLEANUP_SCRIPT`); it needs no network. */
export function buildLayerCleanupPod(input: { name: string; keys: string[]; workerId: string }, placement: LayerBuilderPlacement): V1Pod {
  return layerPod(placement, {
    name: input.name,
    workerId: input.workerId,
    layerLabel: 'cleanup',
    annotations: { 'podflow.dev/layer-keys': input.keys.join(' ') },
    activeDeadlineSeconds: 300,
    containers: [
      layerContainer(placement, {
        name: LAYER_BUILDER_CONTAINER,
        image: placement.images.python,
        command: ['sh', '-c', CLEANUP_SCRIPT, 'podflow-layer-cleanup', ...input.keys],
        env: {},
        workingDir: '/tmp',
        volumeMounts: [
          { name: 'layers', mountPath: LAYERS_VOLUME_PATH },
          { name: 'tmp', mountPath: '/tmp' },
        ],
      }),
    ],
    volumes: [{ name: 'tmp', emptyDir: { sizeLimit: placement.tmpSizeLimit } }],
  });
}

interface LayerContainerInput {
  name: string;
  image: string;
  command: string[];
  env: Record<string, string>;
  workingDir?: string;
  volumeMounts: V1VolumeMount[];
}

/** A container of a builder or cleanup pod: the restricted profile and the builder's resources. */
function layerContainer(placement: LayerBuilderPlacement, input: LayerContainerInput): V1Container {
  return {
    name: input.name,
    image: input.image,
    imagePullPolicy: placement.imagePullPolicy,
    command: input.command,
    workingDir: input.workingDir ?? '/',
    env: Object.entries(input.env).map(([name, value]) => ({ name, value })),
    securityContext: RESTRICTED_CONTAINER_SECURITY,
    resources: {
      requests: { cpu: `${Math.max(1, Math.floor(placement.cpuMillis / 4))}m`, memory: String(Math.floor(placement.memoryBytes / 4)) },
      limits: { cpu: `${placement.cpuMillis}m`, memory: String(placement.memoryBytes) },
    },
    volumeMounts: input.volumeMounts,
  };
}

interface LayerPodInput {
  name: string;
  workerId: string;
  layerLabel: string;
  annotations: Record<string, string>;
  activeDeadlineSeconds: number;
  initContainers?: V1Container[];
  containers: V1Container[];
  /** Besides the layer volume, which every such pod has. */
  volumes: V1Volume[];
}

/** What builder and cleanup pods share: labels, the restricted profile, no token, the layer volume. */
function layerPod(placement: LayerBuilderPlacement, input: LayerPodInput): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: input.name,
      namespace: placement.namespace,
      labels: {
        [LABELS.managedBy]: MANAGED_BY,
        [LABELS.role]: LAYER_BUILDER_ROLE,
        'podflow.dev/layer': input.layerLabel,
        [LABELS.worker]: labelValue(input.workerId),
      },
      annotations: input.annotations,
    },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      // Names are resolved by cluster DNS, the only DNS their NetworkPolicy lets them reach (the
      // node's resolver may sit at a private or link-local address, next to cloud metadata).
      dnsPolicy: 'ClusterFirst',
      terminationGracePeriodSeconds: 0,
      activeDeadlineSeconds: input.activeDeadlineSeconds,
      securityContext: RESTRICTED_POD_SECURITY,
      ...schedulingOf(placement),
      ...(input.initContainers ? { initContainers: input.initContainers } : {}),
      containers: input.containers,
      volumes: [{ name: 'layers', persistentVolumeClaim: { claimName: placement.volumeClaim } }, ...input.volumes],
    },
  };
}

/** The manifest the builder printed between its markers, if the log has one. */
export function manifestFromLog(log: string): string | undefined {
  const begin = log.lastIndexOf(MANIFEST_BEGIN);
  if (begin < 0) return undefined;
  const end = log.indexOf(MANIFEST_END, begin);
  return end < 0 ? undefined : log.slice(begin + MANIFEST_BEGIN.length, end).trim();
}
