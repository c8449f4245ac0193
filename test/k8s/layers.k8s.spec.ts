// Dependency layers on the real cluster, as the worker's ServiceAccount: builder pods install real
// PyPI and npm packages into the shared layer volume, execution pods mount the layer read-only,
// builds are single-flight across workers (Redis lease), and a builder killed mid-install never
// leaves a layer that later runs would trust.
import * as k8s from '@kubernetes/client-node';
import { LAYER_BUILDER_SELECTOR, LayerResolver, LayerResolvingDriver, layerBuilderPodName, layerKey, type SandboxOutcome, type SandboxRequest } from '@podflow/sandbox';
import { KubernetesDriver, PodLayerBackend } from '@podflow/sandbox/kubernetes';
import { normaliseDependencies } from '@podflow/workflow';
import { Redis } from 'ioredis';
import { randomBytes, randomUUID } from 'node:crypto';
import { LAYER_CA_CONFIGMAP, LAYER_VOLUME_CLAIM, RUNTIME_IMAGES, SANDBOX_NAMESPACE, adminConfig, workerConfig } from './support/kube';

const redisUrl = process.env.REDIS_URL;
if (!redisUrl) throw new Error('REDIS_URL is not set: run this suite through `npm run test:k8s`, which starts a private redis-server');

const admin = adminConfig();
const adminCore = admin.makeApiClient(k8s.CoreV1Api);
const PY_IMAGE_RUNTIME = `image:${RUNTIME_IMAGES.python}`;
const NODE_IMAGE_RUNTIME = `image:${RUNTIME_IMAGES.node}`;

// Every set this suite builds; deleted from the volume first, so each run really installs.
const SETS = {
  python: ['python-dateutil==2.9.0.post0', 'tabulate==0.9.0'],
  dayjs: ['dayjs@1.11.13'],
  concurrent: ['tabulate==0.8.10'],
  killed: ['requests==2.32.3'],
};

let redis: Redis;
let workerKube: k8s.KubeConfig;
let driver: KubernetesDriver;
let cleaner: PodLayerBackend;
const builderPods = new Set<string>();
let builderWatch: AbortController | undefined;

function backend(prefix: string, volumeClaim = LAYER_VOLUME_CLAIM): PodLayerBackend {
  return new PodLayerBackend({
    kubeConfig: workerKube,
    redis,
    keyPrefix: `${prefix}:`,
    placement: {
      namespace: SANDBOX_NAMESPACE,
      images: RUNTIME_IMAGES,
      imagePullPolicy: 'IfNotPresent',
      volumeClaim,
      caConfigMap: LAYER_CA_CONFIGMAP,
      env: {},
      cpuMillis: 1000,
      memoryBytes: 1024 * 1024 * 1024,
      tmpSizeLimit: '1Gi',
    },
    installer: { npmIgnoreScripts: true },
    maxBytes: 10 * 1024 ** 3,
    minIdleMs: 600_000,
    workerId: 'layers-test',
  });
}

/** One "worker": its own resolver over the shared volume and Redis. */
function worker(prefix: string, installTimeoutMs = 180_000) {
  const layers = backend(prefix);
  const resolver = new LayerResolver({
    backend: layers,
    redis,
    keyPrefix: `${prefix}:`,
    normalise: normaliseDependencies,
    installTimeoutMs,
    lockTtlMs: 5_000,
    pollMs: 100,
    owner: `test-${randomBytes(3).toString('hex')}`,
  });
  return { layers, layered: new LayerResolvingDriver(driver, resolver) };
}

const freshPrefix = () => `{k8s-layers-${randomBytes(4).toString('hex')}}`;

function request(language: SandboxRequest['language'], code: string, dependencies: string[], args: SandboxRequest['args'] = {}): SandboxRequest {
  const runId = randomUUID();
  return {
    executionId: `${runId}.main.1`,
    tenantId: 'acme',
    runId,
    nodeId: 'main',
    attempt: 1,
    language,
    code,
    args,
    timeoutMs: 60_000,
    dependencies,
    network: false,
    resources: { cpu: '100m', memory: '192Mi' },
  };
}

async function run(target: LayerResolvingDriver, req: SandboxRequest): Promise<SandboxOutcome> {
  const outcome = await target.execute(req, new AbortController().signal);
  await outcome.dispose();
  return outcome;
}

const builds = async (prefix: string) => Object.values(await redis.hgetall(`${prefix}:layer:builds`)).reduce((sum, n) => sum + Number(n), 0);

beforeAll(async () => {
  redis = new Redis(redisUrl);
  workerKube = await workerConfig(admin);
  driver = new KubernetesDriver({
    kubeConfig: workerKube,
    workerId: 'layers-test',
    startTimeoutMs: 120_000,
    placement: { namespace: SANDBOX_NAMESPACE, images: RUNTIME_IMAGES, imagePullPolicy: 'IfNotPresent', homeSizeLimit: '64Mi', tmpSizeLimit: '64Mi', layerVolumeClaim: LAYER_VOLUME_CLAIM },
  });
  cleaner = backend(freshPrefix());
  const keys = [
    layerKey(PY_IMAGE_RUNTIME, 'pypi', normaliseDependencies('python', SETS.python)),
    layerKey(NODE_IMAGE_RUNTIME, 'npm', normaliseDependencies('typescript', SETS.dayjs)),
    layerKey(PY_IMAGE_RUNTIME, 'pypi', normaliseDependencies('python', SETS.concurrent)),
    layerKey(PY_IMAGE_RUNTIME, 'pypi', normaliseDependencies('python', SETS.killed)),
  ];
  await cleaner.remove(keys);
  // Every builder pod this suite causes, by name.
  builderWatch = await new k8s.Watch(admin).watch(
    `/api/v1/namespaces/${SANDBOX_NAMESPACE}/pods`,
    { labelSelector: LAYER_BUILDER_SELECTOR },
    (type, pod: k8s.V1Pod) => {
      if (type === 'ADDED' && !pod.metadata!.name!.startsWith('podflow-layer-gc-')) builderPods.add(`${pod.metadata!.name}/${pod.metadata!.uid}`);
    },
    () => undefined,
  );
}, 180_000);

afterAll(async () => {
  builderWatch?.abort();
  await driver.close();
  redis.disconnect();
});

describe('dependency layers on the kubernetes driver', () => {
  it('a builder pod installs real PyPI packages; execution pods import them read-only; the second run does not install and is faster', async () => {
    const prefix = freshPrefix();
    const { layered } = worker(prefix);
    const code = [
      'from datetime import date',
      'from dateutil.relativedelta import relativedelta',
      'from tabulate import tabulate',
      'import dateutil',
      'def main(args):',
      '    try:',
      '        open("/opt/podflow/layer/python/x", "w")',
      '        writable = True',
      '    except OSError:',
      '        writable = False',
      '    return {"later": (date(2024, 1, 31) + relativedelta(months=1)).isoformat(), "table": tabulate([[1, 2]], tablefmt="plain"), "from": dateutil.__file__, "writable": writable}',
      '',
    ].join('\n');
    const before = builderPods.size;
    const cold = await run(layered, request('python', code, SETS.python));
    expect(cold.error).toBeUndefined();
    expect(cold.output).toEqual({ later: '2024-02-29', table: '1  2', from: '/opt/podflow/layer/python/dateutil/__init__.py', writable: false });
    expect(cold.layer).toMatchObject({ source: 'built' });
    expect(builderPods.size - before).toBe(1);

    const warm = await run(layered, request('python', code, [...SETS.python].reverse()));
    expect(warm.output).toEqual(cold.output);
    expect(warm.layer).toMatchObject({ key: cold.layer!.key, source: 'cache' });
    expect(await builds(prefix)).toBe(1);
    expect(builderPods.size - before).toBe(1);
    expect(warm.layer!.resolveMs).toBeLessThan(cold.layer!.resolveMs);
  });

  it('a TypeScript node imports a real npm package from its layer', async () => {
    const prefix = freshPrefix();
    const { layered } = worker(prefix);
    const outcome = await run(layered, request('typescript', "import dayjs from 'dayjs';\nexport function main(a: { when: string }) { return { next: dayjs(a.when).add(1, 'day').format('YYYY-MM-DD') }; }\n", SETS.dayjs, { when: '2024-02-28' }));
    expect(outcome.error).toBeUndefined();
    expect(outcome.output).toEqual({ next: '2024-02-29' });
    expect(await builds(prefix)).toBe(1);
  });

  it('20 concurrent executions on 20 workers with the same new set: one builder pod, all succeed', async () => {
    const prefix = freshPrefix();
    const before = builderPods.size;
    const workers = Array.from({ length: 20 }, () => worker(prefix));
    const outcomes = await Promise.all(workers.map((w) => run(w.layered, request('python', 'import tabulate\ndef main(args):\n    return {"v": tabulate.__version__}\n', SETS.concurrent))));
    expect(outcomes.map((o) => o.error)).toEqual(Array(20).fill(undefined));
    expect(outcomes.map((o) => o.output)).toEqual(Array(20).fill({ v: '0.8.10' }));
    expect(await builds(prefix)).toBe(1);
    expect(builderPods.size - before).toBe(1);
    expect(outcomes.filter((o) => o.layer!.source === 'built')).toHaveLength(1);
  }, 600_000);

  it('a builder pod deleted mid-install publishes nothing; the next execution rebuilds cleanly', async () => {
    const prefix = freshPrefix();
    const { layered, layers } = worker(prefix);
    const key = layerKey(PY_IMAGE_RUNTIME, 'pypi', normaliseDependencies('python', SETS.killed));
    const code = 'import requests\ndef main(args):\n    return {"v": requests.__version__}\n';
    const pending = run(layered, request('python', code, SETS.killed));
    const name = layerBuilderPodName(key);
    // As soon as pip runs in the builder, delete the pod the way an eviction or an operator would.
    await waitForRunning(name);
    await adminCore.deleteNamespacedPod({ name, namespace: SANDBOX_NAMESPACE, gracePeriodSeconds: 0 });
    const killed = await pending;
    expect(killed.error).toMatchObject({ code: 'SANDBOX_LOST' });
    expect(killed.error!.message).toMatch(/builder pod .* was deleted before it finished; nothing was published/);
    expect(await layers.lookup(key)).toBeUndefined();

    const again = await run(layered, request('python', code, SETS.killed));
    expect(again.error).toBeUndefined();
    expect(again.output).toEqual({ v: '2.32.3' });
    expect(again.layer!.source).toBe('built');
    expect(await builds(prefix)).toBe(2);
    expect((await layers.lookup(key))?.specs).toEqual(['requests==2.32.3']);
  });

  it('a package that does not exist is DEPENDENCY_INSTALL_FAILED with pip\'s and npm\'s own messages', async () => {
    const { layered } = worker(freshPrefix());
    const name = `podflow-no-such-package-${randomBytes(4).toString('hex')}`;
    const py = await run(layered, request('python', 'def main(args): return {}', [`${name}==1.0`]));
    expect(py.error!.code).toBe('DEPENDENCY_INSTALL_FAILED');
    expect(py.error!.message).toContain(`pip could not install ${name}==1.0 (exit code 1)`);
    expect(py.error!.message).toMatch(/No matching distribution found for podflow-no-such-package/);
    const js = await run(layered, request('javascript', 'function main() { return {} }', [`${name}@1.0.0`]));
    expect(js.error!.code).toBe('DEPENDENCY_INSTALL_FAILED');
    expect(js.error!.message).toMatch(/npm could not install .*404/s);
  });

  it('a builder that cannot start says why instead of timing out silently', async () => {
    const prefix = freshPrefix();
    const resolver = new LayerResolver({ backend: backend(prefix, 'no-such-claim'), redis, keyPrefix: `${prefix}:`, normalise: normaliseDependencies, installTimeoutMs: 15_000, owner: 'test' });
    const outcome = await run(new LayerResolvingDriver(driver, resolver), request('python', 'def main(args): return {}', ['tabulate==0.9.0']));
    expect(outcome.error).toMatchObject({ code: 'SANDBOX_START_TIMEOUT' });
    expect(outcome.error!.message).toMatch(/did not start within 15 s: .*no-such-claim/);
  });

  it('a node without dependencies gets no layer volume', async () => {
    const { layered } = worker(freshPrefix());
    const outcome = await run(layered, request('python', 'import os\ndef main(args): return {"layer": os.path.exists("/opt/podflow/layer")}', []));
    expect(outcome.output).toEqual({ layer: false });
    expect(outcome.layer).toBeUndefined();
  });
});

async function waitForRunning(name: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const pod = await adminCore.readNamespacedPod({ name, namespace: SANDBOX_NAMESPACE }).catch(() => undefined);
    // The installer is the pod's second init container (layer-builder-spec.ts).
    if (pod?.status?.initContainerStatuses?.find((status) => status.name === 'install')?.state?.running) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`builder pod ${name} never ran`);
}
