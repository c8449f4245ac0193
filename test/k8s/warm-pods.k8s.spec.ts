// Warm pods on the real cluster, as the worker's ServiceAccount: a claim is won by exactly one
// worker, a warm pod serves exactly one execution, the pool refills, replaces pods that die or
// wait too long, and never leaves more than its size plus one behind.
import * as k8s from '@kubernetes/client-node';
import { ANNOTATIONS, LABELS, executionLabel, resolvePodResources, warmSelector, type SandboxOutcome, type SandboxRequest } from '@podflow/sandbox';
import { KubernetesDriver, WarmPodPool } from '@podflow/sandbox/kubernetes';
import { randomBytes, randomUUID } from 'node:crypto';
import { RUNTIME_IMAGES, SANDBOX_NAMESPACE, adminConfig, eventually, workerConfig } from './support/kube';

const admin = adminConfig();
const adminCore = admin.makeApiClient(k8s.CoreV1Api);
const placement = { namespace: SANDBOX_NAMESPACE, images: RUNTIME_IMAGES, imagePullPolicy: 'IfNotPresent' as const, homeSizeLimit: '256Mi', tmpSizeLimit: '64Mi' };
let workerKube: k8s.KubeConfig;

beforeAll(async () => {
  workerKube = await workerConfig(admin);
});

async function warmPods(runtime: 'python' | 'node'): Promise<k8s.V1Pod[]> {
  const { items } = await adminCore.listNamespacedPod({ namespace: SANDBOX_NAMESPACE, labelSelector: warmSelector(runtime) });
  return items.filter((pod) => !pod.metadata?.deletionTimestamp);
}

const running = (pod: k8s.V1Pod) => pod.status?.containerStatuses?.some((c) => c.state?.running) === true;

async function clearWarmPods(): Promise<void> {
  for (const runtime of ['python', 'node'] as const) {
    await Promise.all((await warmPods(runtime)).map((pod) => adminCore.deleteNamespacedPod({ name: pod.metadata!.name!, namespace: SANDBOX_NAMESPACE, gracePeriodSeconds: 0 }).catch(() => undefined)));
  }
  await eventually(async () => (await warmPods('python')).length + (await warmPods('node')).length === 0, 'no warm pods');
}

function pool(size: number, extra: Partial<ConstructorParameters<typeof WarmPodPool>[0]> = {}): WarmPodPool {
  const core = workerKube.makeApiClient(k8s.CoreV1Api);
  return new WarmPodPool({ core, placement, resources: resolvePodResources(undefined, { defaultCpuMillis: 1000, defaultMemoryBytes: 512 * 1024 * 1024, maxCpuMillis: 4000, maxMemoryBytes: 4096 * 1024 * 1024 }), requestRatio: 0.25, workerId: 'warm-test', size, ...extra });
}

/** Status, output and error of an outcome: a failure shows its error (and stderr) in the diff. */
const ending = (outcome: SandboxOutcome) => ({ status: outcome.status, output: outcome.output, ...(outcome.error ? { error: outcome.error, stderr: outcome.logs.stderr.slice(-2000) } : {}) });

const claimFor = (executionId: string) => ({ executionId, tenantId: 'acme', runId: executionId.split('.')[0]!, nodeId: 'main', attempt: 1, workerId: 'warm-test', nonce: randomBytes(16).toString('hex'), activeDeadlineSeconds: 120, deadlineAt: Date.now() + 120_000 });

beforeEach(clearWarmPods);
afterAll(clearWarmPods);

describe('WarmPodPool', () => {
  it('two workers racing for the last warm pod: exactly one wins it, the other gets none', async () => {
    const a = pool(1);
    const b = pool(1);
    await a.refill();
    await eventually(async () => (await warmPods('python')).some(running), 'a running warm pod', 90_000);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const [first, second] = await Promise.all([a.claim('python', claimFor(`${randomUUID()}.main.1`)), b.claim('python', claimFor(`${randomUUID()}.main.1`))]);
    const winners = [first, second].filter(Boolean);
    expect(winners).toHaveLength(1);
    // The winner's pod is now that execution's, labelled for the reaper, and no longer warm.
    const claimed = await adminCore.readNamespacedPod({ name: winners[0]!, namespace: SANDBOX_NAMESPACE });
    expect(claimed.metadata?.labels?.[LABELS.role]).toBe('sandbox');
    expect(claimed.metadata?.labels?.[LABELS.tenant]).toBe('acme');
    expect(claimed.metadata?.annotations?.[ANNOTATIONS.executionId]).toMatch(/\.main\.1$/);
    // Its backstop counts from the pod's start, so the time it waited warm is added to the 120 s.
    const waitedSeconds = (Date.now() - new Date(claimed.status!.startTime!).getTime()) / 1000;
    expect(claimed.spec!.activeDeadlineSeconds!).toBeGreaterThanOrEqual(120 + Math.floor(waitedSeconds) - 1);
    expect(claimed.spec!.activeDeadlineSeconds!).toBeLessThanOrEqual(120 + Math.ceil(waitedSeconds) + 5);
    expect((await warmPods('python')).map((pod) => pod.metadata!.name)).not.toContain(winners[0]);
    await adminCore.deleteNamespacedPod({ name: winners[0]!, namespace: SANDBOX_NAMESPACE, gracePeriodSeconds: 0 });
    // A claim starts a refill in the background: stopping waits for it, so none lands after the test.
    await Promise.all([a.stop(), b.stop()]);
  });

  it('claims only pods built as this worker would build them: a pod of another template (before a hardening, another image) is never claimed, nor deleted before it is stale (red-team finding)', async () => {
    const before = pool(1);
    await before.refill();
    await eventually(async () => (await warmPods('python')).some(running), 'a running warm pod', 90_000);
    const [old] = await warmPods('python');
    const templateOf = (pod: k8s.V1Pod) => pod.metadata!.labels![LABELS.template];
    // The same worker after an operator change: here other default resources, so another template.
    const after = pool(1, { resources: resolvePodResources(undefined, { defaultCpuMillis: 500, defaultMemoryBytes: 256 * 1024 * 1024, maxCpuMillis: 4000, maxMemoryBytes: 4096 * 1024 * 1024 }) });
    try {
      expect(await after.claim('python', claimFor(`${randomUUID()}.main.1`))).toBeUndefined();
      // Its refill starts pods of its own beside the other, and leaves that one to go stale.
      await after.refill();
      const pods = await warmPods('python');
      const oldNow = pods.find((pod) => pod.metadata!.name === old!.metadata!.name);
      expect(oldNow?.metadata?.labels?.[LABELS.role]).toBe('warm');
      expect(pods.filter((pod) => templateOf(pod) !== templateOf(old!)).length).toBeGreaterThanOrEqual(1);
    } finally {
      await Promise.all([after.stop(), before.stop()]);
    }
  });

  it('refills what was claimed or deleted, replaces pods that waited too long, and trims extras', async () => {
    const warm = pool(2, { maxIdleMs: 60_000 });
    await warm.refill();
    expect(await warmPods('node')).toHaveLength(2);
    // Deleted from outside: the next pass replaces it.
    const [victim] = await warmPods('node');
    await adminCore.deleteNamespacedPod({ name: victim!.metadata!.name!, namespace: SANDBOX_NAMESPACE, gracePeriodSeconds: 0 });
    await eventually(async () => (await warmPods('node')).length === 1, 'the deleted pod gone');
    await warm.refill();
    expect(await warmPods('node')).toHaveLength(2);
    // Another worker refilling at the same moment overshoots; the cap (size + 1) is restored.
    await Promise.all([pool(4).refill(), pool(4).refill()]);
    await warm.refill();
    expect((await warmPods('node')).length).toBe(3);
    // Past maxIdleMs they are all replaced by fresh ones.
    const before = new Set((await warmPods('node')).map((pod) => pod.metadata!.name));
    await pool(2, { maxIdleMs: 60_000, now: () => Date.now() + 120_000 }).refill();
    const after = (await warmPods('node')).map((pod) => pod.metadata!.name);
    expect(after).toHaveLength(2);
    expect(after.filter((name) => before.has(name))).toEqual([]);
  });
});

describe('KubernetesDriver with warm pods', () => {
  let driver: KubernetesDriver;
  const outcomes: SandboxOutcome[] = [];

  beforeAll(() => {
    driver = new KubernetesDriver({ kubeConfig: workerKube, workerId: 'warm-test', startTimeoutMs: 60_000, placement, warmPoolSize: 1 });
  });
  afterAll(async () => {
    await Promise.all(outcomes.map((outcome) => outcome.dispose()));
    await driver.close();
  });

  function request(code: string, args: SandboxRequest['args'] = {}, extra: Partial<SandboxRequest> = {}): SandboxRequest {
    const runId = randomUUID();
    return { executionId: `${runId}.main.1`, tenantId: 'acme', runId, nodeId: 'main', attempt: 1, language: 'python', code, args, timeoutMs: 30_000, dependencies: [], network: false, ...extra };
  }

  async function warmReady(): Promise<void> {
    await driver.warmPool!.refill();
    await eventually(async () => (await warmPods('python')).some(running), 'a running warm python pod', 90_000);
  }

  it('a worker that stops deletes the waiting pods it created: not another worker\'s, and not one claimed after it listed them', async () => {
    const workerOf = async (runtime: 'python' | 'node') => (await warmPods(runtime)).map((pod) => pod.metadata!.labels![LABELS.worker]).sort();
    await pool(1, { workerId: 'warm-staying' }).refill();
    const core = workerKube.makeApiClient(k8s.CoreV1Api);
    const stopping = pool(3, { workerId: 'warm-stopping', core });
    await stopping.refill();
    expect(await workerOf('python')).toEqual(['warm-staying', 'warm-stopping', 'warm-stopping']);
    expect(await workerOf('node')).toEqual(['warm-staying', 'warm-stopping', 'warm-stopping']);
    // The stopping worker's list of its Python pods is taken, then another worker claims one of them.
    const ownPython = `${warmSelector('python')},${LABELS.worker}=warm-stopping`;
    const listed = await core.listNamespacedPod({ namespace: SANDBOX_NAMESPACE, labelSelector: ownPython });
    const claimed = listed.items[0]!.metadata!.name!;
    await adminCore.patchNamespacedPod(
      { name: claimed, namespace: SANDBOX_NAMESPACE, body: { metadata: { labels: { [LABELS.role]: 'sandbox' } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const list = core.listNamespacedPod.bind(core);
    jest.spyOn(core, 'listNamespacedPod').mockImplementation((params) => (params.labelSelector === ownPython ? Promise.resolve(listed) : list(params)));
    await stopping.stop();
    expect(await workerOf('python')).toEqual(['warm-staying']);
    expect(await workerOf('node')).toEqual(['warm-staying']);
    // The claimed pod was listed as waiting, but its delete was conditional on the version listed.
    const survivor = await adminCore.readNamespacedPod({ name: claimed, namespace: SANDBOX_NAMESPACE });
    expect(survivor.metadata?.deletionTimestamp).toBeUndefined();
    await adminCore.deleteNamespacedPod({ name: claimed, namespace: SANDBOX_NAMESPACE, gracePeriodSeconds: 0 });
  });

  it('serves an execution from a warm pod, exactly once: the next one finds nothing the last one left', async () => {
    await warmReady();
    const marker = `warm-${randomBytes(6).toString('hex')}`;
    const leave = 'import os\ndef main(marker):\n    for p in ("/home/user/m", "/tmp/m"):\n        open(p, "w").write(marker)\n    return {"host": os.uname().nodename}\n';
    const first = await driver.execute(request(leave, { marker }), new AbortController().signal);
    outcomes.push(first);
    expect(first.status).toBe('succeeded');
    expect(driver.warmPool!.stats().claimed).toBe(1);
    await warmReady();
    const look = 'import os\ndef main(marker):\n    return {"found": [p for p in ("/home/user/m", "/tmp/m") if os.path.exists(p)], "host": os.uname().nodename}\n';
    const second = await driver.execute(request(look, { marker }), new AbortController().signal);
    outcomes.push(second);
    expect(second).toMatchObject({ status: 'succeeded', output: { found: [] } });
    expect(driver.warmPool!.stats().claimed).toBe(2);
    // Two pods: a pod's hostname is its name.
    expect((second.output as { host: string }).host).not.toBe((first.output as { host: string }).host);
  });

  it('creates a pod for an execution that needs other resources, and finds a claimed pod again for a re-delivered execution', async () => {
    await warmReady();
    const claimed = driver.warmPool!.stats().claimed;
    const cold = await driver.execute(request('def main():\n    return {"ok": True}\n', {}, { resources: { memory: '300Mi' } }), new AbortController().signal);
    outcomes.push(cold);
    expect(cold).toMatchObject({ status: 'succeeded', output: { ok: true } });
    expect(driver.warmPool!.stats().claimed).toBe(claimed);
    // A delivery claims a warm pod and dies before disposing of it; the next delivery adopts that pod.
    const req = request('def main():\n    return {"n": 1}\n');
    const once = await driver.execute(req, new AbortController().signal);
    expect(ending(once)).toEqual({ status: 'succeeded', output: { n: 1 } });
    const { items } = await adminCore.listNamespacedPod({ namespace: SANDBOX_NAMESPACE, labelSelector: `${LABELS.execution}=${executionLabel(req.executionId)}` });
    expect(items).toHaveLength(1);
    const again = await driver.execute(req, new AbortController().signal);
    outcomes.push(again);
    expect(ending(again)).toEqual({ status: 'succeeded', output: { n: 1 } });
    expect(driver.warmPool!.stats().claimed).toBe(claimed + 1);
  });
});
