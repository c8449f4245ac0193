#!/usr/bin/env node
// `npm run bench:helm`: the Helm chart on the local cluster (brought up first). For BENCH_SAMPLES
// installs (default 3), one after another: `helm install --wait` of charts/podflow with the
// offline-built images, then a first Python execution through the coordinator's Service
// (POST /v1/executions?wait=true). Also the image sizes, the chart's resource count per ci/
// scenario and the metric names each component serves. Prints a markdown table, also written to
// bench/results/helm-latest.md.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, chownSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, ensureInstalledAndBuilt, gitDescribe, say } from './lib/services.mjs';
import { ensureHelmTools } from './lib/helm-tools.mjs';
import { ADMIN_KUBECONFIG, IMAGE_DIR, KUBERNETES_VERSION, REDIS_IMAGE, RUNTIME_IMAGES, SERVICE_IMAGES } from '../k8s/local-cluster/lib/config.mjs';
import { binary } from '../k8s/local-cluster/lib/binaries.mjs';

const CHART = join(ROOT, 'charts/podflow');
const API_KEY = 'bench-helm-key-0123456789';

function run(command, args, input) {
  const result = spawnSync(command, args, { encoding: 'utf8', input, env: process.env, maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr || result.stdout}`);
  return result.stdout;
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const seconds = (ms) => (ms / 1000).toFixed(1);
const mib = (bytes) => (bytes / 1024 / 1024).toFixed(0);

/** Volumes the chart's claims bind to (the local node has no storage provisioner). */
function createVolumes(release, namespace, sandbox, dir) {
  for (const [name, ns, uid] of [['files', namespace, 10001], ['layers', sandbox, 1000]]) {
    mkdirSync(join(dir, name));
    chownSync(join(dir, name), uid, uid);
    run(binary('kubectl'), ['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: `${release}-${name}`, labels: { 'podflow.dev/bench': release } },
      spec: {
        capacity: { storage: '20Gi' }, accessModes: ['ReadWriteMany'], persistentVolumeReclaimPolicy: 'Retain', storageClassName: '',
        claimRef: { namespace: ns, name: `${release}-podflow-${name}` },
        hostPath: { path: join(dir, name), type: 'Directory' },
      },
    }));
  }
}

async function firstExecution(url, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`no answer from ${url}/v1/executions within ${timeoutMs / 1000} s`);
    const response = await fetch(`${url}/v1/executions?wait=true`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ language: 'python', code: 'def main(name):\n    return {"hello": name}\n', args: { name: 'podflow' } }),
    }).catch(() => undefined);
    if (response?.ok) {
      const body = await response.json();
      if (body.output?.hello !== 'podflow') throw new Error(`unexpected answer ${JSON.stringify(body)}`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** One install: helm install --wait, then the first execution; uninstalled again. */
async function installOnce(helm, index) {
  const release = `pfbench${index}${Date.now().toString(36).slice(-4)}`;
  const namespace = `${release}-system`;
  const sandbox = `${release}-sandbox`;
  const dir = mkdtempSync(join(tmpdir(), 'podflow-bench-helm-'));
  const values = join(dir, 'values.json');
  writeFileSync(values, JSON.stringify({
    image: { registry: 'docker.io/podflow', tag: 'local' },
    sandbox: { namespace: sandbox, images: { python: `docker.io/${RUNTIME_IMAGES.python}`, node: `docker.io/${RUNTIME_IMAGES.node}` } },
    redis: { embedded: { image: REDIS_IMAGE } },
    auth: { apiKeys: `${API_KEY}=bench` },
  }));
  try {
    createVolumes(release, namespace, sandbox, dir);
    const started = performance.now();
    run(helm, ['install', release, CHART, '--namespace', namespace, '--create-namespace', '-f', values, '--wait', '--timeout', '5m']);
    const ready = performance.now() - started;
    const clusterIp = run(binary('kubectl'), ['get', 'service', `${release}-podflow-coordinator`, '-n', namespace, '-o', 'jsonpath={.spec.clusterIP}']).trim();
    await firstExecution(`http://${clusterIp}`);
    const first = performance.now() - started;
    let metrics;
    if (index === 0) {
      const names = (text) => [...new Set([...text.matchAll(/^# TYPE (podflow_\w+) (\w+)/gm)].map((m) => `${m[1]} (${m[2]})`))];
      const pods = JSON.parse(run(binary('kubectl'), ['get', 'pods', '-n', namespace, '-o', 'json'])).items;
      const ipOf = (component) => pods.find((pod) => pod.metadata.labels['app.kubernetes.io/component'] === component).status.podIP;
      metrics = {
        coordinator: names(await (await fetch(`http://${ipOf('coordinator')}:8080/metrics`)).text()),
        worker: names(await (await fetch(`http://${ipOf('worker')}:9090/metrics`)).text()),
      };
    }
    const uninstallStarted = performance.now();
    run(helm, ['uninstall', release, '--namespace', namespace, '--wait', '--timeout', '3m']);
    const uninstall = performance.now() - uninstallStarted;
    return { ready, first, uninstall, metrics };
  } finally {
    spawnSync(helm, ['uninstall', release, '--namespace', namespace, '--ignore-not-found', '--wait', '--timeout', '3m']);
    spawnSync(binary('kubectl'), ['delete', 'namespace', namespace, sandbox, '--ignore-not-found', '--wait=false']);
    spawnSync(binary('kubectl'), ['delete', 'pv', '-l', `podflow.dev/bench=${release}`, '--ignore-not-found']);
    rmSync(dir, { recursive: true, force: true });
  }
}

function imageSizes() {
  const wanted = new Set([...Object.values(SERVICE_IMAGES), REDIS_IMAGE, ...Object.values(RUNTIME_IMAGES).map((ref) => `docker.io/${ref}`)]);
  return readdirSync(IMAGE_DIR).filter((file) => file.endsWith('.tar.json'))
    .flatMap((file) => {
      const meta = JSON.parse(readFileSync(join(IMAGE_DIR, file), 'utf8'));
      return Array.isArray(meta) ? meta : [meta];
    })
    .filter((image) => wanted.has(image.ref));
}

function resourceCounts(helm) {
  return readdirSync(join(CHART, 'ci')).filter((file) => file.endsWith('-values.yaml')).map((file) => {
    const rendered = run(helm, ['template', 'pf', CHART, '--namespace', 'podflow-system', '--kube-version', KUBERNETES_VERSION, '-f', join(CHART, 'ci', file),
      '--api-versions', 'keda.sh/v1alpha1/ScaledObject', '--api-versions', 'monitoring.coreos.com/v1/ServiceMonitor']);
    return [file.replace('-values.yaml', ''), [...rendered.matchAll(/^kind: \w+$/gm)].length];
  });
}

async function main() {
  const samples = Number(process.env.BENCH_SAMPLES ?? 3);
  if (!Number.isInteger(samples) || samples < 1) throw new Error(`BENCH_SAMPLES must be a positive whole number, got "${process.env.BENCH_SAMPLES}"`);
  ensureInstalledAndBuilt();
  const up = spawnSync(process.execPath, [join(ROOT, 'k8s/local-cluster/cluster.mjs'), 'up'], { stdio: 'inherit', cwd: ROOT });
  if (up.status !== 0) throw new Error('the local cluster did not come up (see above)');
  process.env.KUBECONFIG = ADMIN_KUBECONFIG;
  const { helm } = ensureHelmTools();
  const installs = [];
  for (let index = 0; index < samples; index += 1) {
    say(`install ${index + 1} of ${samples}`);
    installs.push(await installOnce(helm, index));
  }
  const machine = `Machine: ${cpus().length} cores, Node ${process.version}; local cluster, Kubernetes ${KUBERNETES_VERSION}; podflow ${gitDescribe()}; ${new Date().toISOString()}`;
  const lines = [
    machine,
    '',
    `Install to first workflow, ${samples} installs one after another (default values but the local images; seconds, median and each):`,
    '',
    '| figure | median | each |',
    '|---|---|---|',
    ['`helm install --wait` (every Deployment Ready)', installs.map((i) => i.ready)],
    ['install start → first `POST /v1/executions?wait=true` answered', installs.map((i) => i.first)],
    ['`helm uninstall --wait`', installs.map((i) => i.uninstall)],
  ].map((row) => (Array.isArray(row) ? `| ${row[0]} | ${seconds(median(row[1]))} | ${row[1].map(seconds).join(', ')} |` : row));
  lines.push('', 'Images (offline build, as imported):', '', '| image | compressed MiB | unpacked MiB |', '|---|---|---|');
  for (const image of imageSizes()) lines.push(`| ${image.ref} | ${mib(image.compressedSize)} | ${mib(image.unpackedSize)} |`);
  lines.push('', 'Resources the chart renders, per ci/ scenario:', '', '| scenario | resources |', '|---|---|');
  for (const [scenario, count] of resourceCounts(helm)) lines.push(`| ${scenario} | ${count} |`);
  const { metrics } = installs[0];
  // prom-client's default process and Node.js metrics carry the component in their prefix.
  const own = (names, component) => names.filter((name) => !name.startsWith(`podflow_${component}_process_`) && !name.startsWith(`podflow_${component}_nodejs_`));
  for (const component of ['coordinator', 'worker']) {
    const names = metrics[component];
    lines.push('', `Metrics of the ${component}: ${own(names, component).join(', ')}; and ${names.length - own(names, component).length} process and Node.js metrics (podflow_${component}_process_*, podflow_${component}_nodejs_*)`);
  }
  lines.push('');
  const table = lines.join('\n');
  process.stdout.write(`${table}\n`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'helm-latest.md'), `${table}\n`);
}

main().catch((error) => {
  process.stderr.write(`bench:helm failed: ${error.message}\n`);
  process.exit(1);
});
