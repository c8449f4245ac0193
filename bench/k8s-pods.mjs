// Pod lifecycle latency on a real cluster: create → scheduled → started → Succeeded → deleted for
// trivial pods (python3 -c pass in runtime-python, restricted profile), one at a time, timed from
// the client with a watch. Baseline in the same run: the same image and command started by
// containerd alone (`ctr run --rm`), i.e. what Kubernetes adds on top of the container runtime.
import * as k8s from '@kubernetes/client-node';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { summary } from './lib.mjs';

const NAMESPACE = 'podflow-sandbox';
const IMAGE = 'podflow/runtime-python:local';
const COMMAND = ['python3', '-c', 'pass'];

function trivialPod(name) {
  return {
    metadata: { name, labels: { 'podflow.dev/bench': 'pod-lifecycle' } },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      dnsPolicy: 'Default',
      securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{
        name: 'main',
        image: IMAGE,
        imagePullPolicy: 'IfNotPresent',
        command: COMMAND,
        securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
        resources: { requests: { cpu: '50m', memory: '32Mi' }, limits: { cpu: '500m', memory: '128Mi' } },
      }],
    },
  };
}

const started = (pod) => pod.status?.phase === 'Running' || pod.status?.phase === 'Succeeded'
  || Boolean(pod.status?.containerStatuses?.[0]?.state?.running || pod.status?.containerStatuses?.[0]?.state?.terminated);

/** One pod's timeline, in ms from just before the create call. */
async function onePod(config, core) {
  const name = `bench-${randomBytes(4).toString('hex')}`;
  const marks = {};
  let t0 = 0;
  let resolveDone;
  let rejectDone;
  const done = new Promise((resolve, reject) => { resolveDone = resolve; rejectDone = reject; });
  const watch = await new k8s.Watch(config).watch(`/api/v1/namespaces/${NAMESPACE}/pods`, { fieldSelector: `metadata.name=${name}` }, (type, pod) => {
    const now = performance.now() - t0;
    if (type === 'DELETED') {
      marks.deleted ??= now;
      resolveDone();
      return;
    }
    if (pod.spec?.nodeName) marks.scheduled ??= now;
    if (started(pod)) marks.started ??= now;
    if (pod.status?.phase === 'Failed') rejectDone(new Error(`bench pod ${name} failed: ${JSON.stringify(pod.status)}`));
    if (pod.status?.phase === 'Succeeded' && marks.succeeded === undefined) {
      marks.succeeded = now;
      marks.deleteCalled = performance.now() - t0;
      core.deleteNamespacedPod({ name, namespace: NAMESPACE, gracePeriodSeconds: 0 }).catch(rejectDone);
    }
  }, (error) => { if (error) rejectDone(error); });
  // The watch is established before the clock starts, so no event is missed.
  t0 = performance.now();
  await core.createNamespacedPod({ namespace: NAMESPACE, body: trivialPod(name) });
  const timer = setTimeout(() => rejectDone(new Error(`bench pod ${name} did not finish in 120 s`)), 120_000);
  try {
    await done;
  } finally {
    clearTimeout(timer);
    watch.abort();
  }
  return marks;
}

/** The same container through containerd alone, as the baseline. */
function oneCtrRun(ctrArgs) {
  const id = `bench-${randomBytes(4).toString('hex')}`;
  const t0 = performance.now();
  const result = spawnSync('ctr', [...ctrArgs, 'run', '--rm', `docker.io/${IMAGE}`, id, ...COMMAND], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ctr run failed: ${result.stderr}`);
  return performance.now() - t0;
}

/**
 * Runs `samples` pods one after another (after 2 warm-ups) and, when `ctrArgs` is given (local
 * cluster: containerd's socket and namespace), as many `ctr run --rm` baselines.
 */
export async function runPodLifecycle({ samples, ctrArgs }) {
  const config = new k8s.KubeConfig();
  config.loadFromDefault();
  const core = config.makeApiClient(k8s.CoreV1Api);
  for (let i = 0; i < 2; i += 1) await onePod(config, core);
  const timelines = [];
  for (let i = 0; i < samples; i += 1) timelines.push(await onePod(config, core));
  const phase = (from, to) => summary(timelines.map((m) => m[to] - (from ? m[from] : 0)));
  const baseline = ctrArgs ? (oneCtrRun(ctrArgs), summary(Array.from({ length: samples }, () => oneCtrRun(ctrArgs)))) : undefined;
  return {
    samples,
    createToScheduled: phase(undefined, 'scheduled'),
    scheduledToStarted: phase('scheduled', 'started'),
    startedToSucceeded: phase('started', 'succeeded'),
    succeededToDeleted: phase('deleteCalled', 'deleted'),
    createToSucceeded: phase(undefined, 'succeeded'),
    total: phase(undefined, 'deleted'),
    baseline,
  };
}

/**
 * Per-node latency of a no-op Python node through the sandbox drivers themselves, in the same run:
 * the kubernetes driver (a cold pod per execution) with its phases from a watch, and the process
 * driver on this machine as the reference.
 */
export async function runDriverLatency({ samples, workerKubeconfig }) {
  const { ProcessDriver, podNameFor } = await import('@podflow/sandbox');
  const { KubernetesDriver } = await import('@podflow/sandbox/kubernetes.js');
  const admin = new k8s.KubeConfig();
  admin.loadFromDefault();
  const workerConfig = new k8s.KubeConfig();
  if (workerKubeconfig) workerConfig.loadFromFile(workerKubeconfig);
  else workerConfig.loadFromDefault();
  const kubernetes = new KubernetesDriver({
    kubeConfig: workerConfig,
    workerId: 'bench',
    placement: { namespace: NAMESPACE, images: { python: IMAGE, node: 'podflow/runtime-node:local' }, imagePullPolicy: 'IfNotPresent', homeSizeLimit: '64Mi', tmpSizeLimit: '64Mi' },
  });
  // The same driver with warm pods (one per runtime, refilled and ready before each sample).
  const warm = new KubernetesDriver({
    kubeConfig: workerConfig,
    workerId: 'bench',
    placement: { namespace: NAMESPACE, images: { python: IMAGE, node: 'podflow/runtime-node:local' }, imagePullPolicy: 'IfNotPresent', homeSizeLimit: '64Mi', tmpSizeLimit: '64Mi' },
    warmPoolSize: 1,
  });
  const adminCore = admin.makeApiClient(k8s.CoreV1Api);
  const { warmSelector } = await import('@podflow/sandbox');
  const processDriver = new ProcessDriver({ isolation: 'auto', warmPoolSize: 1 });
  await processDriver.init();
  const code = 'def main(args):\n    return {}\n';
  const request = () => {
    const runId = randomBytes(8).toString('hex');
    return { executionId: `${runId}.noop.1`, tenantId: 'bench', runId, nodeId: 'noop', attempt: 1, language: 'python', code, args: {}, timeoutMs: 30_000, dependencies: [], network: false };
  };

  async function onePod() {
    const req = request();
    const name = podNameFor(req.executionId);
    const marks = {};
    let t0 = 0;
    let gone;
    const deleted = new Promise((resolve) => { gone = resolve; });
    const watch = await new k8s.Watch(admin).watch(`/api/v1/namespaces/${NAMESPACE}/pods`, { fieldSelector: `metadata.name=${name}` }, (type, pod) => {
      const now = performance.now() - t0;
      if (type === 'ADDED') marks.created ??= now;
      if (pod.spec?.nodeName) marks.scheduled ??= now;
      if (started(pod)) marks.running ??= now;
      if (type === 'DELETED') { marks.deleted = now; gone(); }
    }, () => undefined);
    t0 = performance.now();
    const outcome = await kubernetes.execute(req, new AbortController().signal);
    marks.answered = performance.now() - t0;
    if (outcome.status !== 'succeeded') throw new Error(`bench execution failed: ${JSON.stringify(outcome.error)}`);
    marks.execution = outcome.durationMs;
    marks.disposeCalled = performance.now() - t0;
    await outcome.dispose();
    await deleted;
    watch.abort();
    return marks;
  }

  async function warmReady() {
    await warm.warmPool.refill();
    for (let i = 0; i < 600; i++) {
      const { items } = await adminCore.listNamespacedPod({ namespace: NAMESPACE, labelSelector: warmSelector('python') });
      if (items.some((pod) => started(pod))) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('no warm pod became ready within 60 s');
  }

  async function oneWarm() {
    await warmReady();
    const claimedBefore = warm.warmPool.stats().claimed;
    const t0 = performance.now();
    const outcome = await warm.execute(request(), new AbortController().signal);
    const answered = performance.now() - t0;
    if (outcome.status !== 'succeeded') throw new Error(`bench execution failed: ${JSON.stringify(outcome.error)}`);
    if (warm.warmPool.stats().claimed !== claimedBefore + 1) throw new Error('the warm sample did not claim a warm pod');
    await outcome.dispose();
    return answered;
  }

  async function oneProcess() {
    const t0 = performance.now();
    const outcome = await processDriver.execute(request(), new AbortController().signal);
    await outcome.dispose();
    if (outcome.status !== 'succeeded') throw new Error(`bench execution failed: ${JSON.stringify(outcome.error)}`);
    return performance.now() - t0;
  }

  for (let i = 0; i < 2; i += 1) { await onePod(); await oneWarm(); await oneProcess(); }
  const pods = [];
  const warms = [];
  const processes = [];
  // Interleaved, so the drivers see the same machine load.
  for (let i = 0; i < samples; i += 1) {
    pods.push(await onePod());
    warms.push(await oneWarm());
    await new Promise((resolve) => setTimeout(resolve, 250)); // the process driver's pool refills
    processes.push(await oneProcess());
  }
  await kubernetes.close();
  await warm.close();
  await processDriver.close();
  // Warm pods left waiting are the pool's; the bench's own are removed.
  const { items: leftover } = await adminCore.listNamespacedPod({ namespace: NAMESPACE, labelSelector: warmSelector('python') });
  const { items: leftoverNode } = await adminCore.listNamespacedPod({ namespace: NAMESPACE, labelSelector: warmSelector('node') });
  await Promise.all([...leftover, ...leftoverNode].map((pod) => adminCore.deleteNamespacedPod({ name: pod.metadata.name, namespace: NAMESPACE, gracePeriodSeconds: 0 }).catch(() => undefined)));
  const phase = (from, to) => summary(pods.map((m) => m[to] - (from ? m[from] : 0)));
  return {
    samples,
    createCall: phase(undefined, 'created'),
    createdToScheduled: phase('created', 'scheduled'),
    scheduledToRunning: phase('scheduled', 'running'),
    runningToAnswered: phase('running', 'answered'),
    execution: summary(pods.map((m) => m.execution)),
    deletion: phase('disposeCalled', 'deleted'),
    answered: phase(undefined, 'answered'),
    total: phase(undefined, 'deleted'),
    warmPod: summary(warms),
    processDriver: summary(processes),
  };
}
