// Pinned versions, paths and addresses of the local single-node cluster. One place to change them.
import { homedir, hostname } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(new URL('../../..', import.meta.url).pathname);
export const CACHE_DIR = process.env.PODFLOW_CACHE_DIR ?? join(homedir(), '.cache', 'podflow');

/**
 * Kubernetes 1.34 is the newest release whose kubelet still starts on a cgroup v1 host by default
 * (1.35 makes `failCgroupV1: true` the default and the removal of v1 support is under way).
 */
export const KUBERNETES_VERSION = 'v1.34.4';
/** The etcd minor release Kubernetes 1.34 is tested with (3.6). Debian 12's etcd-server is 3.4. */
export const ETCD_VERSION = 'v3.6.5';
/** The cluster DNS server (the release line Kubernetes 1.34's kubeadm deploys). */
export const COREDNS_VERSION = 'v1.12.4';
/** Debian release the images are bootstrapped from (the same as these machines and the Dockerfiles). */
export const DEBIAN_SUITE = 'bookworm';
export const DEBIAN_MIRROR = process.env.PODFLOW_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';

/** Bump when the image recipe changes, so cached images are rebuilt. */
export const IMAGE_RECIPE_VERSION = '2';

export const BIN_DIR = join(CACHE_DIR, 'k8s', KUBERNETES_VERSION, 'bin');
export const BUILD_DIR = join(CACHE_DIR, 'k8s', KUBERNETES_VERSION, 'build');
export const IMAGE_DIR = join(CACHE_DIR, 'k8s', 'images');

/** Everything of a running cluster (PKI, configs, state, logs) lives here; `cluster:down --purge` removes it. */
export const CLUSTER_DIR = process.env.PODFLOW_CLUSTER_DIR ?? join(CACHE_DIR, 'cluster');
export const PKI_DIR = join(CLUSTER_DIR, 'pki');
export const CONFIG_DIR = join(CLUSTER_DIR, 'config');
export const STATE_DIR = join(CLUSTER_DIR, 'state');
export const LOG_DIR = join(CLUSTER_DIR, 'logs');
export const RUN_DIR = join(CLUSTER_DIR, 'run');

/** The kubeconfigs tests and the worker use (stable paths, printed by `cluster:status`). */
export const ADMIN_KUBECONFIG = join(CLUSTER_DIR, 'admin.kubeconfig');
export const WORKER_KUBECONFIG = join(CLUSTER_DIR, 'worker.kubeconfig');
/** Backs the `podflow-layers` PersistentVolumeClaim (dependency layers) through a hostPath volume. */
export const LAYERS_DIR = join(CLUSTER_DIR, 'layers');
export const LAYER_VOLUME_CLAIM = 'podflow-layers';
/** CA roots for layer builder pods (this host's bundle, so TLS-inspecting egress proxies work). */
export const LAYER_CA_CONFIGMAP = 'podflow-layer-ca';

export const NODE_NAME = (process.env.PODFLOW_NODE_NAME ?? hostname()).toLowerCase();
export const APISERVER_PORT = 6443;
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
export const KUBELET_PORT = 10250;
export const POD_CIDR = '10.88.0.0/16';
/** The bridge's own address in the pod range (the CNI bridge plugin's gateway). */
export const POD_GATEWAY_IP = '10.88.0.1';
export const SERVICE_CIDR = '10.96.0.0/16';
/** First address of the service range: the `kubernetes` Service's ClusterIP, also in the apiserver cert. */
export const KUBERNETES_SERVICE_IP = '10.96.0.1';
/**
 * Cluster DNS: CoreDNS on the host, bound to a link-local address of the loopback interface (the
 * address NodeLocal DNSCache uses), so pods reach it through their default route and nothing
 * outside this machine can. The label names the address as ours.
 */
export const CLUSTER_DNS_IP = '169.254.20.10';
export const CLUSTER_DNS_LABEL = 'lo:podflow-dns';
export const CLUSTER_DOMAIN = 'cluster.local';

export const CONTAINERD_ROOT = join(STATE_DIR, 'containerd');
export const CONTAINERD_SOCKET = join(RUN_DIR, 'containerd', 'containerd.sock');
export const CNI_BIN_DIR = '/usr/lib/cni';

/** Namespace, ServiceAccount and images the worker uses (see k8s/manifests/sandbox). */
export const SANDBOX_NAMESPACE = 'podflow-sandbox';
export const WORKER_NAMESPACE = 'podflow-system';
export const WORKER_SERVICE_ACCOUNT = 'podflow-worker';
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10';
export const RUNTIME_IMAGES = {
  python: 'podflow/runtime-python:local',
  node: 'podflow/runtime-node:local',
};
/** podflow's own images, as the chart names them with `image.registry=docker.io/podflow` and `image.tag=local`. */
export const SERVICE_IMAGES = {
  coordinator: 'docker.io/podflow/coordinator:local',
  worker: 'docker.io/podflow/worker:local',
};
/** Debian's redis-server, for the chart's in-chart Redis (`redis.embedded.image`). */
export const REDIS_IMAGE = 'docker.io/podflow/redis:local';
