#!/usr/bin/env node
// podflow's local single-node Kubernetes cluster, built offline "the hard way":
//   node k8s/local-cluster/cluster.mjs up|down|status   (npm run cluster:up / cluster:down / cluster:status)
// See k8s/local-cluster/README.md for what runs where and why.
import { chmodSync, chownSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBinaries, binary } from './lib/binaries.mjs';
import {
  ADMIN_KUBECONFIG, APISERVER_PORT, CLUSTER_DIR, LAYER_CA_CONFIGMAP, LAYER_VOLUME_CLAIM, LAYERS_DIR, STATE_DIR, CONTAINERD_SOCKET, ETCD_VERSION, KUBERNETES_VERSION, NODE_NAME,
  REPO_ROOT, RUNTIME_IMAGES, SANDBOX_NAMESPACE, WORKER_KUBECONFIG, WORKER_NAMESPACE, WORKER_SERVICE_ACCOUNT,
} from './lib/config.mjs';
import {
  apiserverCommand, apiserverReady, controllerManagerCommand, etcdCommand, etcdHealthy, schedulerCommand,
} from './lib/control-plane.mjs';
import { logTail, runningPid, startDaemon, stopDaemon, stopPid } from './lib/daemons.mjs';
import { ensureImageArchives, qualified } from './lib/images.mjs';
import {
  cgroupVersion, containerdCommand, containerdReady, ctr, importImages, kubeletCommand, prepareKernel, writeCniConfig,
} from './lib/node.mjs';
import { certificateKubeconfig, ensurePki, tokenKubeconfig } from './lib/pki.mjs';
import { run, say, step, tryRun, waitFor } from './lib/sh.mjs';
import { ensureHostPackages } from './lib/host.mjs';
import {
  checkServiceNetwork, cleanUpKubeProxyRules, coreDnsCommand, coreDnsRbacManifest, coreDnsReady, ensureDnsAddress, kubeProxyCommand, removeDnsAddress,
} from './lib/service-network.mjs';

const MANIFESTS = join(REPO_ROOT, 'k8s', 'manifests', 'sandbox');
/** Daemons in start order; `down` stops them in reverse. */
const DAEMONS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'containerd', 'kubelet', 'kube-proxy', 'coredns'];

export function kubectl(args, options = {}) {
  return run(binary('kubectl'), [`--kubeconfig=${ADMIN_KUBECONFIG}`, ...args], { quiet: true, ...options });
}

function nodeIp() {
  const route = tryRun('ip', ['-4', 'route', 'get', '1.1.1.1']);
  const source = route?.match(/\bsrc (\S+)/)?.[1];
  if (source) return source;
  const first = tryRun('hostname', ['-I'])?.split(/\s+/)[0];
  if (first) return first;
  throw new Error('could not find this machine\'s IPv4 address (no default route and `hostname -I` is empty); set up a network interface first');
}

/**
 * Starts daemon `name` unless it runs, and waits until `ready`. A running daemon whose
 * configuration changed (`changed`, from its command builder) is restarted to load it.
 */
async function startAndWait(name, [command, args, changed = false], ready, timeoutMs = 90_000) {
  if (changed && runningPid(name)) {
    say(`${name}: configuration changed; restarting`);
    await stopDaemon(name);
  }
  const started = startDaemon(name, command, args);
  await waitFor(`${name} to become ready`, async () => {
    if (!runningPid(name)) throw new Error(`${name} exited; last log lines:\n${logTail(name)}`);
    return ready();
  }, { timeoutMs, hint: `See ${join(CLUSTER_DIR, 'logs', `${name}.log`)}` });
  say(`${name}: ${started ? 'started' : 'already running'}`);
}

function nodeReady() {
  const out = tryRun(binary('kubectl'), [`--kubeconfig=${ADMIN_KUBECONFIG}`, 'get', 'node', NODE_NAME, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
  return out === 'True';
}

async function up() {
  const began = Date.now();
  if (process.getuid?.() !== 0) throw new Error('cluster:up runs containerd and the kubelet and needs root; run it as root (or with sudo)');
  await step('host packages (containerd, runc, CNI plugins, debootstrap, iptables)', () => ensureHostPackages());
  for (const note of prepareKernel()) say(`warning: ${note}`);
  const builtBinaries = await step(`binaries (Kubernetes ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION})`, () => ensureBinaries());
  const images = await step('images (pause, runtime-python, runtime-node, redis, coordinator, worker)', () => ensureImageArchives());
  const ip = nodeIp();
  await step('PKI and kubeconfigs', () => {
    ensurePki(ip);
    writeFileSync(ADMIN_KUBECONFIG, certificateKubeconfig('podflow-admin', 'admin'), { mode: 0o600 });
  });
  await step('control plane', async () => {
    await startAndWait('etcd', etcdCommand(), etcdHealthy);
    await startAndWait('kube-apiserver', apiserverCommand(ip), apiserverReady, 120_000);
    await startAndWait('kube-controller-manager', controllerManagerCommand(), () => true);
    await startAndWait('kube-scheduler', schedulerCommand(), () => true);
  });
  await step('node (containerd, images, CNI, kubelet)', async () => {
    writeCniConfig();
    await startAndWait('containerd', containerdCommand(), () => containerdReady());
    const imported = importImages(images);
    if (imported.length) say(`imported into containerd: ${imported.join(', ')}`);
    await startAndWait('kubelet', kubeletCommand(ip), () => nodeReady(), 120_000);
  });
  await step('service network (kube-proxy, CoreDNS)', async () => {
    await startAndWait('kube-proxy', kubeProxyCommand(), () => true);
    kubectl(['apply', '-f', '-'], { input: coreDnsRbacManifest() });
    ensureDnsAddress();
    await startAndWait('coredns', coreDnsCommand(ip), () => coreDnsReady());
    await waitFor('Services to resolve and carry traffic', () => checkServiceNetwork().then(() => true), { timeoutMs: 30_000 });
  });
  await step('podflow namespaces, RBAC, NetworkPolicies and the layer volume', async () => {
    kubectl(['apply', '-f', '-'], { input: layerVolumeManifest() });
    kubectl(['apply', '-f', MANIFESTS]);
    const ca = kubectl(['-n', SANDBOX_NAMESPACE, 'create', 'configmap', LAYER_CA_CONFIGMAP, `--from-file=ca.crt=${HOST_CA_BUNDLE}`, '--dry-run=client', '-o', 'yaml']);
    kubectl(['apply', '-f', '-'], { input: ca });
    await waitFor('the worker ServiceAccount', () => tryRun(binary('kubectl'), [`--kubeconfig=${ADMIN_KUBECONFIG}`, '-n', WORKER_NAMESPACE, 'get', 'serviceaccount', WORKER_SERVICE_ACCOUNT]));
    // A bound token (TokenRequest API), re-issued at every `up`; 7 days outlive any test session.
    const token = kubectl(['-n', WORKER_NAMESPACE, 'create', 'token', WORKER_SERVICE_ACCOUNT, '--duration=168h']).trim();
    writeFileSync(WORKER_KUBECONFIG, tokenKubeconfig(`${WORKER_NAMESPACE}:${WORKER_SERVICE_ACCOUNT}`, token, SANDBOX_NAMESPACE), { mode: 0o600 });
  });
  await step('health check', () => healthCheck());
  const seconds = ((Date.now() - began) / 1000).toFixed(1);
  say(`cluster is up in ${seconds} s (${builtBinaries ? 'binaries built this time' : 'binaries from cache'})`);
  printSummary();
}

const HOST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/**
 * A hostPath PersistentVolume for the `podflow-layers` claim (k8s/manifests/sandbox/40-layer-volume.yaml),
 * pre-bound to it. Builder pods run as uid 1000 and must be able to write the directory.
 */
function layerVolumeManifest() {
  mkdirSync(LAYERS_DIR, { recursive: true });
  chownSync(LAYERS_DIR, 1000, 1000);
  chmodSync(LAYERS_DIR, 0o755);
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name: `podflow-layers-${NODE_NAME}`, labels: { 'app.kubernetes.io/part-of': 'podflow' } },
    spec: {
      capacity: { storage: '20Gi' },
      accessModes: ['ReadWriteMany'],
      persistentVolumeReclaimPolicy: 'Retain',
      storageClassName: '',
      claimRef: { namespace: SANDBOX_NAMESPACE, name: LAYER_VOLUME_CLAIM },
      hostPath: { path: LAYERS_DIR, type: 'Directory' },
    },
  });
}

/** What `up` promises: the API answers, the node is Ready with our images, the worker identity works. */
async function healthCheck() {
  if (!(await apiserverReady())) throw new Error('kube-apiserver /readyz is not ok');
  if (!nodeReady()) throw new Error(`node ${NODE_NAME} is not Ready; see ${join(CLUSTER_DIR, 'logs', 'kubelet.log')}`);
  const nodeImages = kubectl(['get', 'node', NODE_NAME, '-o', 'jsonpath={.status.images[*].names[*]}']);
  for (const ref of Object.values(RUNTIME_IMAGES).map(qualified)) {
    if (!nodeImages.includes(ref)) throw new Error(`image ${ref} is not on node ${NODE_NAME}; cluster:up imports it into containerd (namespace k8s.io)`);
  }
  await waitFor(`the ${LAYER_VOLUME_CLAIM} claim to bind`, () => kubectl(['-n', SANDBOX_NAMESPACE, 'get', 'pvc', LAYER_VOLUME_CLAIM, '-o', 'jsonpath={.status.phase}']) === 'Bound', { timeoutMs: 30_000 });
  const canCreate = tryRun(binary('kubectl'), [`--kubeconfig=${WORKER_KUBECONFIG}`, 'auth', 'can-i', 'create', 'pods', '-n', SANDBOX_NAMESPACE]);
  if (canCreate !== 'yes') throw new Error(`the worker kubeconfig (${WORKER_KUBECONFIG}) cannot create pods in ${SANDBOX_NAMESPACE}`);
}

function printSummary() {
  process.stdout.write([
    `Kubernetes ${KUBERNETES_VERSION} on node ${NODE_NAME} (cgroup v${cgroupVersion()}), API https://127.0.0.1:${APISERVER_PORT}`,
    `  admin:  export KUBECONFIG=${ADMIN_KUBECONFIG}`,
    `  worker: ${WORKER_KUBECONFIG} (ServiceAccount ${WORKER_NAMESPACE}/${WORKER_SERVICE_ACCOUNT}, namespace ${SANDBOX_NAMESPACE})`,
    `  kubectl: ${binary('kubectl')}`,
    `  logs:   ${join(CLUSTER_DIR, 'logs')}`,
    '',
  ].join('\n'));
}

/**
 * Deletes every pod through the API first so the kubelet tears each down properly (CNI DEL frees
 * its address and NAT rules), then stops the kubelet, kills any container left and its shim,
 * containerd and the control plane, unmounts what the pods mounted and removes the pod network.
 */
async function down({ purge }) {
  if (runningPid('kubelet') && runningPid('kube-apiserver') && (await apiserverReady().catch(() => false))) {
    tryRun(binary('kubectl'), [`--kubeconfig=${ADMIN_KUBECONFIG}`, 'delete', 'pods', '--all', '--all-namespaces', '--grace-period=0', '--force', '--wait=false']);
    await waitFor('the kubelet to stop every pod', () => !containerdReady() || ctr(['tasks', 'list', '-q']).trim() === '', { timeoutMs: 30_000 }).catch((error) => say(`warning: ${error.message}`));
  }
  if (await stopDaemon('kubelet')) say('kubelet: stopped');
  if (runningPid('containerd') && containerdReady()) {
    for (const id of ctr(['tasks', 'list', '-q']).split('\n').filter(Boolean)) {
      tryRun('ctr', ['--address', CONTAINERD_SOCKET, '-n', 'k8s.io', 'tasks', 'kill', '--signal', 'SIGKILL', id]);
    }
  }
  // Shims outlive containerd by design; ours are the ones whose -address is our socket.
  for (const pid of shimPids()) await stopPid(pid, 5_000);
  for (const name of [...DAEMONS].reverse()) {
    if (await stopDaemon(name)) say(`${name}: stopped`);
  }
  cleanUpKubeProxyRules();
  removeDnsAddress();
  unmountUnder(CLUSTER_DIR);
  removePodNetwork();
  if (purge) {
    rmSync(CLUSTER_DIR, { recursive: true, force: true });
    say(`removed ${CLUSTER_DIR} (binaries and images stay cached)`);
  }
  const left = leftovers();
  if (left.length) throw new Error(`still running after cluster:down: ${left.join(', ')}`);
  say('cluster is down; nothing of it is running');
}

/** Network namespaces, the bridge, NAT rules and address leases of pods that were not torn down. */
function removePodNetwork() {
  for (const netns of (tryRun('ip', ['netns', 'list']) ?? '').split('\n').map((line) => line.split(' ')[0]).filter((name) => name.startsWith('cni-'))) {
    tryRun('ip', ['netns', 'delete', netns]);
  }
  if (tryRun('ip', ['link', 'show', 'podflow0']) !== undefined) tryRun('ip', ['link', 'delete', 'podflow0']);
  // The bridge plugin's masquerading: a POSTROUTING jump per pod into a CNI-<hash> chain, commented with our network's name.
  const rules = (tryRun('iptables', ['-t', 'nat', '-S']) ?? '').split('\n');
  const chains = new Set();
  for (const rule of rules.filter((line) => line.startsWith('-A POSTROUTING') && line.includes('name: \\"podflow\\"'))) {
    const chain = rule.match(/-j (CNI-\S+)/)?.[1];
    if (chain) chains.add(chain);
    tryRun('sh', ['-c', `iptables -t nat ${rule.replace(/^-A/, '-D')}`]);
  }
  for (const chain of chains) {
    tryRun('iptables', ['-t', 'nat', '-F', chain]);
    tryRun('iptables', ['-t', 'nat', '-X', chain]);
  }
  rmSync(join(STATE_DIR, 'cni-ipam'), { recursive: true, force: true });
}

function shimPids() {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmdline.includes('containerd-shim') && cmdline.includes(CONTAINERD_SOCKET);
    } catch {
      return false;
    }
  });
}

function unmountUnder(dir) {
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((line) => line.split(' ')[1]).filter((point) => point?.startsWith(dir));
  // Deepest first, so nested mounts come off before their parents.
  for (const point of mounts.sort((a, b) => b.length - a.length)) tryRun('umount', ['-l', point]);
}

function leftovers() {
  return [...DAEMONS.filter((name) => runningPid(name)), ...shimPids().map((pid) => `containerd-shim pid ${pid}`)];
}

async function status() {
  const rows = DAEMONS.map((name) => [name, runningPid(name) ? `running (pid ${runningPid(name)})` : 'stopped']);
  for (const [name, state] of rows) process.stdout.write(`${name.padEnd(24)} ${state}\n`);
  const apiOk = runningPid('kube-apiserver') ? await apiserverReady().catch(() => false) : false;
  process.stdout.write(`${'apiserver /readyz'.padEnd(24)} ${apiOk ? 'ok' : 'not ready'}\n`);
  if (apiOk) {
    process.stdout.write(`${'node'.padEnd(24)} ${NODE_NAME} ${nodeReady() ? 'Ready' : 'NotReady'}\n`);
    printSummary();
  }
  return apiOk && nodeReady();
}

const [command, ...rest] = process.argv.slice(2);
const commands = {
  up: () => up(),
  down: () => down({ purge: rest.includes('--purge') }),
  status: async () => { if (!(await status())) process.exitCode = 1; },
};
if (!commands[command]) {
  process.stderr.write('usage: cluster.mjs up | down [--purge] | status\n');
  process.exit(2);
}
commands[command]().catch((error) => {
  say(`error: ${error.message}`);
  process.exit(1);
});
