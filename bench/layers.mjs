// Dependency layer latency per node, on both sandbox drivers in one run: a node without
// dependencies, a node whose layer is published (warm), and a node whose layer must be built first
// (cold: the layer removed before each sample, and on the process driver pip's and npm's download
// caches too, so both drivers download everything). Timed from execute() to the answer, layer
// resolution included, through the same LayerResolvingDriver the worker uses.
import * as k8s from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { log, summary } from './lib.mjs';

const NAMESPACE = 'podflow-sandbox';
const IMAGES = { python: 'podflow/runtime-python:local', node: 'podflow/runtime-node:local' };

export const SETS = {
  python: {
    language: 'python',
    dependencies: ['python-dateutil==2.9.0.post0', 'tabulate==0.9.0'],
    plain: 'def main(args):\n    return {"ok": True}\n',
    code: 'from dateutil.relativedelta import relativedelta\nfrom tabulate import tabulate\ndef main(args):\n    return {"ok": bool(tabulate([[relativedelta(months=1).months]]))}\n',
  },
  typescript: {
    language: 'typescript',
    dependencies: ['dayjs@1.11.13'],
    plain: 'export function main() { return { ok: true }; }\n',
    code: "import dayjs from 'dayjs';\nexport function main() { return { ok: dayjs('2024-02-28').add(1, 'day').date() === 29 }; }\n",
  },
};

export async function runLayerLatency({ samples, coldSamples, redisUrl, workerKubeconfig }) {
  const sandbox = { ...(await import('@podflow/sandbox')), ...(await import('@podflow/sandbox/kubernetes.js')) };
  const { normaliseDependencies } = await import('@podflow/workflow');
  const redis = new Redis(redisUrl);
  // Like the worker's `${QUEUE_PREFIX}:`: a plain namespace, no Redis Cluster hash tag in the prefix.
  const prefix = `bench-layers-${randomBytes(4).toString('hex')}:`;
  const workRoot = mkdtempSync(join(tmpdir(), 'podflow-bench-layers-work-'));
  const cacheRoot = mkdtempSync(join(tmpdir(), 'podflow-bench-layers-cache-'));
  chmodSync(workRoot, 0o711);
  chmodSync(cacheRoot, 0o755);

  const processDriver = new sandbox.ProcessDriver({ isolation: 'auto', workRoot });
  await processDriver.init();
  const localBackend = new sandbox.LocalLayerBackend({
    root: cacheRoot,
    interpreters: processDriver.interpreters,
    commands: { python: processDriver.interpreters.python, npm: [join(process.execPath, '..', 'npm')] },
    installer: { npmIgnoreScripts: true },
    maxBytes: 10 * 1024 ** 3,
    minIdleMs: 600_000,
    hostEnv: process.env,
    builtBy: 'bench',
  });

  const workerConfig = new k8s.KubeConfig();
  if (workerKubeconfig) workerConfig.loadFromFile(workerKubeconfig);
  else workerConfig.loadFromDefault();
  const kubernetesDriver = new sandbox.KubernetesDriver({
    kubeConfig: workerConfig,
    workerId: 'bench',
    placement: { namespace: NAMESPACE, images: IMAGES, imagePullPolicy: 'IfNotPresent', homeSizeLimit: '64Mi', tmpSizeLimit: '64Mi', layerVolumeClaim: 'podflow-layers' },
  });
  const podBackend = new sandbox.PodLayerBackend({
    kubeConfig: workerConfig,
    redis,
    keyPrefix: prefix,
    placement: {
      namespace: NAMESPACE,
      images: IMAGES,
      imagePullPolicy: 'IfNotPresent',
      volumeClaim: 'podflow-layers',
      caConfigMap: process.env.BENCH_LAYER_CA_CONFIGMAP ?? 'podflow-layer-ca',
      env: {},
      cpuMillis: 1000,
      memoryBytes: 1024 ** 3,
      tmpSizeLimit: '1Gi',
    },
    installer: { npmIgnoreScripts: true },
    maxBytes: 10 * 1024 ** 3,
    minIdleMs: 600_000,
    workerId: 'bench',
  });

  const resolver = (backend) => new sandbox.LayerResolver({ backend, redis, keyPrefix: prefix, normalise: normaliseDependencies, installTimeoutMs: 300_000, owner: 'bench' });
  const drivers = {
    process: { layered: new sandbox.LayerResolvingDriver(processDriver, resolver(localBackend)), backend: localBackend },
    kubernetes: { layered: new sandbox.LayerResolvingDriver(kubernetesDriver, resolver(podBackend)), backend: podBackend },
  };

  const keyOf = async (driverName, set) => {
    const { backend } = drivers[driverName];
    const language = set.language;
    const specs = normaliseDependencies(language, set.dependencies);
    return sandbox.layerKey(await backend.runtimeId(language), language === 'python' ? 'pypi' : 'npm', specs);
  };

  /** Forgets a layer (and, on the process driver, the installers' download caches). */
  async function makeCold(driverName, set) {
    const key = await keyOf(driverName, set);
    if (driverName === 'process') {
      rmSync(join(cacheRoot, key), { recursive: true, force: true });
      rmSync(join(cacheRoot, '.installer-home'), { recursive: true, force: true });
    } else {
      await podBackend.remove([key]);
    }
  }

  async function sample(driverName, set, withDependencies) {
    const runId = randomBytes(8).toString('hex');
    const request = {
      executionId: `${runId}.bench.1`, tenantId: 'bench', runId, nodeId: 'bench', attempt: 1, language: set.language,
      code: withDependencies ? set.code : set.plain, args: {}, timeoutMs: 60_000,
      dependencies: withDependencies ? set.dependencies : [], network: false,
      resources: { cpu: '500m', memory: '256Mi' },
    };
    const t0 = performance.now();
    const outcome = await drivers[driverName].layered.execute(request, new AbortController().signal);
    const elapsed = performance.now() - t0;
    await outcome.dispose();
    if (outcome.status !== 'succeeded' || outcome.output?.ok !== true) throw new Error(`bench execution failed on ${driverName}: ${JSON.stringify(outcome.error ?? outcome.output)}`);
    return { elapsed, source: outcome.layer?.source ?? 'none' };
  }

  const configs = [];
  for (const driverName of ['process', 'kubernetes']) for (const setName of Object.keys(SETS)) configs.push({ driverName, setName, set: SETS[setName] });
  const results = Object.fromEntries(configs.map((c) => [`${c.driverName}/${c.setName}`, { none: [], warm: [], cold: [] }]));

  log('warm-up: one of each (this also publishes the layers for the warm samples)');
  for (const c of configs) {
    await sample(c.driverName, c.set, false);
    await sample(c.driverName, c.set, true);
  }
  // Interleaved, so every configuration sees the same machine load.
  for (let i = 0; i < samples; i += 1) {
    for (const c of configs) {
      results[`${c.driverName}/${c.setName}`].none.push((await sample(c.driverName, c.set, false)).elapsed);
      const warm = await sample(c.driverName, c.set, true);
      if (warm.source !== 'cache') throw new Error(`a warm sample was not a cache hit (${warm.source})`);
      results[`${c.driverName}/${c.setName}`].warm.push(warm.elapsed);
    }
  }
  for (let i = 0; i < coldSamples; i += 1) {
    log(`cold samples: round ${i + 1} of ${coldSamples}`);
    for (const c of configs) {
      await makeCold(c.driverName, c.set);
      const cold = await sample(c.driverName, c.set, true);
      if (cold.source !== 'built') throw new Error(`a cold sample did not build its layer (${cold.source})`);
      results[`${c.driverName}/${c.setName}`].cold.push(cold.elapsed);
    }
  }

  await processDriver.close();
  await kubernetesDriver.close();
  redis.disconnect();
  rmSync(workRoot, { recursive: true, force: true });
  rmSync(cacheRoot, { recursive: true, force: true });
  return Object.fromEntries(Object.entries(results).map(([name, r]) => [name, { none: summary(r.none), warm: summary(r.warm), cold: summary(r.cold) }]));
}
