import type { V1Pod } from '@kubernetes/client-node';
import type { LayerManifest } from '../layers/layer';
import { LABELS, MANAGED_BY, labelValue } from './pod-identity';
import { RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY, schedulingOf, type PodPlacement } from './pod-spec';

export const LAYER_BUILDER_ROLE = 'layer-builder';
export const LAYER_BUILDER_CONTAINER = 'builder';
/** Selects every layer builder pod (their NetworkPolicy, the reaper and tests use it). */
export const LAYER_BUILDER_SELECTOR = `${LABELS.managedBy}=${MANAGED_BY},${LABELS.role}=${LAYER_BUILDER_ROLE}`;
/** Where builder pods mount the layer volume read-write. */
export const LAYERS_VOLUME_PATH = '/layers';
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
  memoryBytes: number;
  /** Size of the builder's /tmp (pip and npm caches, wheels being built). */
  tmpSizeLimit: string;
}

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
 * The builder's whole program (POSIX sh, no user code): reuse a published layer if there is one;
 * else install into the staging directory, make it readable, write the manifest last, and publish
 * with one rename. A builder killed at any point leaves at most a staging directory, never
 * `/layers/<key>`. The manifest goes to the log between markers for the worker to read.
 */
export const BUILDER_SCRIPT = `set -u
key=$1; staging=$2; shift 2
final=${LAYERS_VOLUME_PATH}/$key
emit() { echo '${MANIFEST_BEGIN}'; cat "$final/.podflow-layer.json"; echo; echo '${MANIFEST_END}'; }
if [ -f "$final/.podflow-layer.json" ]; then echo "layer $key is already published"; emit; exit 0; fi
mkdir -p "$(dirname "$staging")" && rm -rf "$staging" && mkdir -p "$staging" || { echo "cannot create $staging on the layer volume" >&2; exit 70; }
"$@"
code=$?
if [ $code -ne 0 ]; then rm -rf "$staging"; exit $code; fi
chmod -R a+rX,go-w "$staging"
size=$(du -sb "$staging" | cut -f1)
printf '%s' "$PODFLOW_LAYER_MANIFEST" | sed "s/\\"sizeBytes\\":0/\\"sizeBytes\\":$size/" > "$staging/.podflow-layer.json"
chmod 644 "$staging/.podflow-layer.json"
if ! mv -T "$staging" "$final" 2>/dev/null; then
  if [ -f "$final/.podflow-layer.json" ]; then rm -rf "$staging"; else echo "could not publish $final" >&2; exit 71; fi
fi
emit
`;

/**
 * The pod that builds one layer. Like sandbox pods it passes the restricted Pod Security profile
 * and runs the same runtime image (so compiled packages match the interpreter), but it mounts the
 * layer volume read-write and is the only podflow pod allowed to reach package registries (its
 * own NetworkPolicy, k8s/manifests/sandbox/30-layer-builder-network-policy.yaml).
 */
export function buildLayerBuilderPod(input: LayerBuilderInput, placement: LayerBuilderPlacement): V1Pod {
  const ca = placement.caConfigMap ? `${CA_DIR}/ca.crt` : undefined;
  return layerVolumePod(placement, {
    name: layerBuilderPodName(input.key),
    workerId: input.workerId,
    layerLabel: input.key.slice(0, 63),
    annotations: { 'podflow.dev/layer-key': input.key, 'podflow.dev/specs': input.manifest.specs.join(' ') },
    image: input.language === 'python' ? placement.images.python : placement.images.node,
    command: ['sh', '-c', BUILDER_SCRIPT, 'podflow-layer-builder', input.key, input.staging, ...input.installer],
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
      PODFLOW_LAYER_MANIFEST: JSON.stringify({ ...input.manifest, sizeBytes: 0 }),
    },
    caConfigMap: placement.caConfigMap,
    activeDeadlineSeconds: input.activeDeadlineSeconds,
  });
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
  return layerVolumePod(placement, {
    name: input.name,
    workerId: input.workerId,
    layerLabel: 'cleanup',
    annotations: { 'podflow.dev/layer-keys': input.keys.join(' ') },
    image: placement.images.python,
    command: ['sh', '-c', CLEANUP_SCRIPT, 'podflow-layer-cleanup', ...input.keys],
    env: {},
    activeDeadlineSeconds: 300,
  });
}

interface LayerVolumePodInput {
  name: string;
  workerId: string;
  layerLabel: string;
  annotations: Record<string, string>;
  image: string;
  command: string[];
  env: Record<string, string>;
  caConfigMap?: string;
  activeDeadlineSeconds: number;
}

/** What builder and cleanup pods share: the restricted profile, the volume read-write, a sized /tmp. */
function layerVolumePod(placement: LayerBuilderPlacement, input: LayerVolumePodInput): V1Pod {
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
      // Package registries are resolved with the node's DNS (no cluster DNS needed).
      dnsPolicy: 'Default',
      terminationGracePeriodSeconds: 0,
      activeDeadlineSeconds: input.activeDeadlineSeconds,
      securityContext: RESTRICTED_POD_SECURITY,
      ...schedulingOf(placement),
      containers: [
        {
          name: LAYER_BUILDER_CONTAINER,
          image: input.image,
          imagePullPolicy: placement.imagePullPolicy,
          command: input.command,
          workingDir: '/tmp',
          env: Object.entries(input.env).map(([name, value]) => ({ name, value })),
          securityContext: RESTRICTED_CONTAINER_SECURITY,
          resources: {
            requests: { cpu: `${Math.max(1, Math.floor(placement.cpuMillis / 4))}m`, memory: String(Math.floor(placement.memoryBytes / 4)) },
            limits: { cpu: `${placement.cpuMillis}m`, memory: String(placement.memoryBytes) },
          },
          volumeMounts: [
            { name: 'layers', mountPath: LAYERS_VOLUME_PATH },
            { name: 'tmp', mountPath: '/tmp' },
            ...(input.caConfigMap ? [{ name: 'ca', mountPath: CA_DIR, readOnly: true }] : []),
          ],
        },
      ],
      volumes: [
        { name: 'layers', persistentVolumeClaim: { claimName: placement.volumeClaim } },
        { name: 'tmp', emptyDir: { sizeLimit: placement.tmpSizeLimit } },
        ...(input.caConfigMap ? [{ name: 'ca', configMap: { name: input.caConfigMap } }] : []),
      ],
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
