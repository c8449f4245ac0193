import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PodflowClient, type RunView } from '@podflow/client';
import { ROOT } from '../support/stack';
import { kubectlPath, run, runAsync } from './support';

// Issue 14: `helm install` of charts/podflow with the real coordinator, worker and Redis images
// (built offline and imported by `npm run cluster:up`) on the local cluster. Everything goes
// through the chart's own objects: the coordinator's Service (reached at its ClusterIP, which
// kube-proxy serves on this host too), the in-chart Redis, the workers' in-cluster identity and
// Role, sandbox pods in the chart's sandbox namespace, the chart's volume claims (bound to
// hostPath volumes this suite creates, as a storage class would) and its layer CA ConfigMap.
// The tests run in order and share one release.
const CHART = join(ROOT, 'charts/podflow');
const API_KEY = 'helm-install-key-0123456789';
const TENANT = 'acme';
const HOST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
/** As `npm run cluster:up` imports them (k8s/local-cluster/lib/config.mjs). */
const IMAGES = {
  registry: 'docker.io/podflow',
  tag: 'local',
  python: 'docker.io/podflow/runtime-python:local',
  node: 'docker.io/podflow/runtime-node:local',
  redis: 'docker.io/podflow/redis:local',
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    await sleep(500);
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

/** The sum of a Prometheus counter's samples whose labels include `labels`. */
function counter(text: string, name: string, labels: Record<string, string>): number {
  return text.split('\n')
    .filter((line) => line.startsWith(`${name}{`) && Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`)))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

/** The value of a Prometheus sample without labels. */
function gauge(text: string, name: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  if (!line) throw new Error(`no sample of ${name}`);
  return Number(line.split(' ').pop());
}

// The images exist only in the local cluster's containerd (`cluster:up` builds and imports them),
// and this host reaches ClusterIPs and hostPath volumes only there: against another cluster
// (KUBECONFIG set), `npm run test:k8s` leaves this suite out, and says so.
const onLocalCluster = process.env.PODFLOW_LOCAL_CLUSTER === '1';

(onLocalCluster ? describe : describe.skip)('helm install with the real images (issue 14)', () => {
  const release = `pf${randomBytes(3).toString('hex')}`;
  const namespace = `${release}-system`;
  const sandbox = `${release}-sandbox`;
  const coordinatorService = `${release}-podflow-coordinator`;
  let helm: string;
  let kc: string;
  let volumes: string;
  let client: PodflowClient;
  let baseUrl: string;

  const kubectl = (...args: string[]) => {
    const result = run(kc, args);
    if (result.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  };
  const podsOf = (ns: string, selector?: string) =>
    (JSON.parse(kubectl('get', 'pods', '-n', ns, '-o', 'json', ...(selector ? ['-l', selector] : []))) as { items: Array<{ metadata: { name: string }; status: { podIP?: string; phase: string } }> }).items;
  const workerMetrics = async () => {
    const texts = await Promise.all(podsOf(namespace, 'app.kubernetes.io/component=worker')
      .filter((pod) => pod.status.podIP)
      .map(async (pod) => (await fetch(`http://${pod.status.podIP}:9090/metrics`)).text()));
    return texts.join('\n');
  };
  /** What the cluster looked like, for a failure message: sandbox pods, recent events, worker logs. */
  const diagnosis = () => [
    run(kc, ['get', 'pods', '-n', sandbox, '-o', 'wide']).stdout,
    run(kc, ['get', 'events', '-n', sandbox, '--sort-by=.lastTimestamp']).stdout.split('\n').slice(-15).join('\n'),
    run(kc, ['logs', '-n', namespace, '-l', 'app.kubernetes.io/component=worker', '--tail=15', '--prefix']).stdout,
  ].join('\n');
  const runToEnd = async (workflow: unknown, inputs: Record<string, unknown> = {}, timeoutMs = 180_000): Promise<RunView> => {
    const { id } = await client.submitRun({ workflow, inputs: inputs as never });
    try {
      return await client.waitForRun(id, 200, timeoutMs);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${diagnosis()}`);
    }
  };
  const helmUpgrade = (args: string[]) => runAsync(helm, ['upgrade', release, CHART, '--namespace', namespace, '--reuse-values', '--wait', '--timeout', '4m', ...args]);
  const podNames = (component: string) => podsOf(namespace, `app.kubernetes.io/component=${component}`).map((pod) => pod.metadata.name);

  beforeAll(() => {
    helm = (JSON.parse(spawnSync(process.execPath, [join(ROOT, 'scripts/lib/helm-tools.mjs')], { encoding: 'utf8' }).stdout.trim()) as { helm: string }).helm;
    kc = kubectlPath();
    // What an earlier run killed half-way left behind (its release, namespaces and volumes), so it
    // does not starve this one on a small node.
    const releases = JSON.parse(run(helm, ['list', '--all-namespaces', '-o', 'json']).stdout || '[]') as Array<{ name: string; namespace: string }>;
    for (const old of releases.filter((r) => /^pf[0-9a-f]{6}$/.test(r.name) && r.namespace === `${r.name}-system`)) {
      run(helm, ['uninstall', old.name, '--namespace', old.namespace, '--wait', '--timeout', '2m']);
      run(kc, ['delete', 'namespace', old.namespace, `${old.name}-sandbox`, '--ignore-not-found', '--wait=false']);
    }
    run(kc, ['delete', 'pv', '-l', 'podflow.dev/test', '--ignore-not-found']);
    // The chart's claims bind to these hostPath volumes (no storage class provisions on this node).
    // The files volume is written by the services (uid 10001), layers by builder pods (uid 1000).
    volumes = mkdtempSync(join(tmpdir(), 'podflow-helm-volumes-'));
    const claims = [
      { name: 'files', ns: namespace, uid: 10001 },
      { name: 'layers', ns: sandbox, uid: 1000 },
    ];
    for (const { name, ns, uid } of claims) {
      mkdirSync(join(volumes, name));
      chownSync(join(volumes, name), uid, uid);
      const applied = run(kc, ['apply', '-f', '-'], JSON.stringify({
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: `${release}-${name}`, labels: { 'podflow.dev/test': release } },
        spec: {
          capacity: { storage: '20Gi' },
          accessModes: ['ReadWriteMany'],
          persistentVolumeReclaimPolicy: 'Retain',
          storageClassName: '',
          claimRef: { namespace: ns, name: `${release}-podflow-${name}` },
          hostPath: { path: join(volumes, name), type: 'Directory' },
        },
      }));
      if (applied.status !== 0) throw new Error(applied.stderr);
    }
  });

  afterAll(() => {
    if (helm) run(helm, ['uninstall', release, '--namespace', namespace, '--ignore-not-found', '--wait', '--timeout', '2m']);
    run(kc, ['delete', 'namespace', namespace, sandbox, '--ignore-not-found', '--wait=false']);
    run(kc, ['delete', 'pv', '-l', `podflow.dev/test=${release}`, '--ignore-not-found', '--wait=false']);
    if (volumes) rmSync(volumes, { recursive: true, force: true });
  });

  it('installs: the coordinators and workers become Ready with the real images, and a first workflow succeeds', async () => {
    const values = join(volumes, 'values.json');
    writeFileSync(values, JSON.stringify({
      image: { registry: IMAGES.registry, tag: IMAGES.tag, pullPolicy: 'IfNotPresent' },
      // Sized for a two-core node: one warm pod per runtime and a smaller default CPU limit (a
      // pod requests a quarter of it), so sandbox pods leave room for a rolling update's surge
      // pods; two executions per worker, so a batch of eight has runs queued, not only running.
      worker: { concurrency: 2 },
      sandbox: { namespace: sandbox, images: { python: IMAGES.python, node: IMAGES.node }, warmPoolSize: 1, defaultCpuMillis: 400 },
      redis: { embedded: { image: IMAGES.redis } },
      auth: { apiKeys: `${API_KEY}=${TENANT}` },
    }));
    const install = run(helm, ['install', release, CHART, '--namespace', namespace, '--create-namespace', '-f', values,
      '--set-file', `sandbox.layers.caBundle=${HOST_CA_BUNDLE}`, '--wait', '--timeout', '4m']);
    expect({ status: install.status, stderr: install.stderr }).toEqual({ status: 0, stderr: '' });
    // NOTES.txt tells how to reach the API and submit a first execution.
    expect(install.stdout).toContain(`port-forward svc/${coordinatorService} 8080:80`);
    expect(install.stdout).toContain('/v1/executions?wait=true');

    for (const component of ['coordinator', 'worker']) {
      const deployment = JSON.parse(kubectl('get', 'deployment', `${release}-podflow-${component}`, '-n', namespace, '-o', 'json')) as { spec: { replicas: number; template: { spec: { containers: Array<{ image: string }> } } }; status: { readyReplicas?: number } };
      expect({ component, ready: deployment.status.readyReplicas, image: deployment.spec.template.spec.containers[0]!.image })
        .toEqual({ component, ready: deployment.spec.replicas, image: `${IMAGES.registry}/${component}:${IMAGES.tag}` });
    }
    const clusterIp = kubectl('get', 'service', coordinatorService, '-n', namespace, '-o', 'jsonpath={.spec.clusterIP}').trim();
    baseUrl = `http://${clusterIp}`;
    client = new PodflowClient({ url: baseUrl, apiKey: API_KEY });

    const first = await runToEnd({ id: 'hello', nodes: [{ id: 'hello', language: 'python', code: 'def main(name):\n    return {"hello": name}\n', inputs: { name: 'inputs.name' } }] }, { name: 'Ada' });
    expect({ status: first.status, output: first.nodes.hello?.output }).toEqual({ status: 'succeeded', output: { hello: 'Ada' } });
  });

  it('runs a chain of Python, TypeScript and JavaScript nodes as sandbox pods through the coordinator Service', async () => {
    const before = counter(await workerMetrics(), 'podflow_execution_duration_seconds_count', { driver: 'kubernetes', outcome: 'succeeded' });
    const chain = await runToEnd({
      id: 'chain',
      nodes: [
        { id: 'py', language: 'python', code: 'def main(n):\n    return {"n": n * 2}\n', inputs: { n: 'inputs.n' } },
        { id: 'ts', language: 'typescript', code: 'export function main(args: { n: number }) { return { n: args.n + 1 }; }', inputs: { n: 'nodes.py.output.n' } },
        { id: 'js', language: 'javascript', code: 'function main({ n }) { return { n: n * 10, pod: require("node:os").hostname() }; }\n', inputs: { n: 'nodes.ts.output.n' } },
      ],
      edges: [{ from: 'py', to: 'ts' }, { from: 'ts', to: 'js' }],
    }, { n: 4 });
    expect({ status: chain.status, error: chain.error, n: chain.nodes.js?.output?.n }).toEqual({ status: 'succeeded', error: undefined, n: 90 });
    // The code ran in a sandbox pod: its host name is a pod of the chart's sandbox namespace.
    expect(String(chain.nodes.js?.output?.pod)).toMatch(/^podflow-/);
    const after = counter(await workerMetrics(), 'podflow_execution_duration_seconds_count', { driver: 'kubernetes', outcome: 'succeeded' });
    expect(after - before).toBe(3);
  });

  it('runs a node with dependencies: a builder pod installs the layer into the chart\'s claim', async () => {
    // Waits past the worker's bound on one install (LAYER_INSTALL_TIMEOUT_MS, 300 s): a registry
    // that stalls then fails the node with pip's own message instead of timing the test out.
    const result = await runToEnd({
      id: 'deps',
      nodes: [{ id: 'table', language: 'python', dependencies: ['tabulate==0.9.0'], code: 'from tabulate import tabulate\n\ndef main():\n    return {"table": tabulate([["a", 1]], tablefmt="plain")}\n' }],
    }, {}, 330_000);
    expect({ status: result.status, error: result.error, output: result.nodes.table?.output }).toEqual({ status: 'succeeded', error: undefined, output: { table: 'a  1' } });
    expect(counter(await workerMetrics(), 'podflow_layer_cache_events_total', { event: 'built' })).toBeGreaterThanOrEqual(1);
  }, 360_000);

  it('returns a file written under /home/user as a URL that downloads through the coordinator Service', async () => {
    const result = await runToEnd({
      id: 'report',
      nodes: [{ id: 'report', language: 'python', code: 'def main():\n    with open("orders.csv", "w") as f:\n        f.write("sku,qty\\nA-1,2\\n")\n    return {"rows": 1}\n' }],
    });
    expect(result.status).toBe('succeeded');
    const file = (result.nodes.report?.files as { elements: Array<{ name: string; download_url: string }> } | undefined)?.elements[0];
    expect(file?.name).toBe('orders.csv');
    // The URL names the Service (files.publicUrl's default); this host reaches it at its ClusterIP.
    const url = new URL(file!.download_url);
    expect(url.hostname).toBe(`${coordinatorService}.${namespace}.svc`);
    const download = await fetch(`${baseUrl}${url.pathname}${url.search}`);
    expect({ status: download.status, body: await download.text() }).toEqual({ status: 200, body: 'sku,qty\nA-1,2\n' });
  });

  it('serves /metrics in the cluster: the coordinator through its Service, each worker on its pod', async () => {
    const coordinator = await (await fetch(`${baseUrl}/metrics`)).text();
    for (const name of ['podflow_queue_jobs', 'podflow_backlog_executions', 'podflow_results_applied_total', 'podflow_runs_finished_total', 'podflow_schedule_to_start_seconds_bucket']) {
      expect(coordinator).toContain(name);
    }
    // Counters are per process, so Prometheus scrapes every coordinator pod (as the ServiceMonitor's
    // endpoints do): together they counted each of the 6 executions above.
    const perPod = await Promise.all(podsOf(namespace, 'app.kubernetes.io/component=coordinator')
      .map(async (pod) => (await fetch(`http://${pod.status.podIP}:8080/metrics`)).text()));
    expect(perPod).toHaveLength(2);
    expect(perPod.reduce((sum, text) => sum + counter(text, 'podflow_executions_total', { tenant: TENANT, outcome: 'succeeded' }), 0)).toBe(6);
    const workers = await workerMetrics();
    for (const name of ['podflow_execution_duration_seconds_bucket', 'podflow_pod_create_to_running_seconds_bucket', 'podflow_worker_executions_running']) {
      expect(workers).toContain(name);
    }
  });

  const slowWorkflow = (seconds: number) => ({ id: 'slow', nodes: [{ id: 'slow', language: 'python', code: `import time\n\ndef main():\n    time.sleep(${seconds})\n    return {"slept": True}\n` }] });
  const workerEnv = (name: string) => kubectl('get', 'deployment', `${release}-podflow-worker`, '-n', namespace, '-o', `jsonpath={.spec.template.spec.containers[0].env[?(@.name=="${name}")].value}`).trim();
  const backlog = async () => gauge(await (await fetch(`${baseUrl}/metrics`)).text(), 'podflow_backlog_executions');

  it('upgrades (worker replicas and config values) with a batch of runs queued and running: each runs once and succeeds, and the backlog metric moves', async () => {
    expect(await backlog()).toBe(0);
    // Two workers with two slots each: four nodes run while four wait. Each sleeps past the
    // rollout, so the old workers are replaced while their executions run (they finish them
    // within the grace period) and the waiting ones are taken by new workers.
    const ids = await Promise.all(Array.from({ length: 8 }, async () => (await client.submitRun({ workflow: slowWorkflow(25) })).id));
    const seen = await eventually('the backlog gauge to count the batch', async () => {
      const value = await backlog();
      return value >= 5 ? value : undefined;
    }, 30_000);
    expect(seen).toBeGreaterThanOrEqual(5);
    await eventually('four nodes to run', async () => ((await Promise.all(ids.map((id) => client.getRun(id)))).filter((view) => view.nodes.slow?.status === 'running').length === 4 ? true : undefined), 60_000);
    const workersBefore = podNames('worker');
    const upgrading = helmUpgrade(['--set', 'worker.replicas=3', '--set', 'worker.concurrency=3', '--set', 'coordinator.env.LOG_LEVEL=debug']);
    // Polled while helm rolls the coordinators and workers out (the client rides over a closed connection).
    const views = await Promise.all(ids.map((id) => client.waitForRun(id, 250, 200_000)));
    const upgrade = await upgrading;
    expect({ status: upgrade.status, stderr: upgrade.stderr }).toEqual({ status: 0, stderr: '' });
    expect(views.map((view) => [view.status, view.error?.code, view.nodes.slow?.attempts])).toEqual(ids.map(() => ['succeeded', undefined, 1]));
    // Each old worker finished what it ran, then exited.
    await eventually('the old workers to be gone', () => (podNames('worker').some((name) => workersBefore.includes(name)) ? undefined : true), 60_000);
    await eventually('the backlog gauge to drain', async () => ((await backlog()) === 0 ? true : undefined), 30_000);
    const workers = JSON.parse(kubectl('get', 'deployment', `${release}-podflow-worker`, '-n', namespace, '-o', 'json')) as { status: { readyReplicas?: number; updatedReplicas?: number } };
    expect({ concurrency: workerEnv('WORKER_CONCURRENCY'), ready: workers.status.readyReplicas, updated: workers.status.updatedReplicas })
      .toEqual({ concurrency: '3', ready: 3, updated: 3 });
  });

  it('rolls back with a run in flight: the run outlives the rollout, succeeds once, and the first revision\'s values are back', async () => {
    // 40 s: longer than a rollout here (10-20 s), shorter than the workers' 50 s grace period.
    const { id } = await client.submitRun({ workflow: slowWorkflow(40) });
    await eventually('the slow node to start', async () => ((await client.getRun(id)).nodes.slow?.status === 'running' ? true : undefined), 60_000);
    const workersBefore = podNames('worker');
    const rollback = await runAsync(helm, ['rollback', release, '1', '--namespace', namespace, '--wait', '--timeout', '4m']);
    expect({ status: rollback.status, stderr: rollback.stderr }).toEqual({ status: 0, stderr: '' });
    // The rollout finished while the node still ran: its worker was replaced under it.
    expect((await client.getRun(id)).nodes.slow?.status).toBe('running');
    const view = await client.waitForRun(id, 250, 120_000);
    expect({ status: view.status, error: view.error, attempts: view.nodes.slow?.attempts }).toEqual({ status: 'succeeded', error: undefined, attempts: 1 });
    await eventually('the old workers to be gone', () => (podNames('worker').some((name) => workersBefore.includes(name)) ? undefined : true), 60_000);
    expect(workerEnv('WORKER_CONCURRENCY')).toBe('2');
    const deployment = JSON.parse(kubectl('get', 'deployment', `${release}-podflow-worker`, '-n', namespace, '-o', 'json')) as { spec: { replicas: number } };
    expect(deployment.spec.replicas).toBe(2);
    const history = JSON.parse(run(helm, ['history', release, '--namespace', namespace, '-o', 'json']).stdout) as Array<{ revision: number; status: string }>;
    expect(history.map(({ revision, status }) => [revision, status])).toEqual([[1, 'superseded'], [2, 'superseded'], [3, 'deployed']]);
  });

  it('uninstalls without leaving a pod in the release or the sandbox namespace', async () => {
    const uninstall = run(helm, ['uninstall', release, '--namespace', namespace, '--wait', '--timeout', '2m']);
    expect({ status: uninstall.status, stderr: uninstall.stderr }).toEqual({ status: 0, stderr: '' });
    // The sandbox namespace is the chart's, so it goes with every warm pod the workers left in it.
    await eventually('the release\'s pods to be gone', () => (podsOf(namespace).length === 0 ? true : undefined));
    await eventually('the sandbox namespace to be gone', () => (run(kc, ['get', 'namespace', sandbox]).status !== 0 ? true : undefined));
    expect(kubectl('get', 'pvc', '-n', namespace, '-o', 'name').trim()).toBe('');
  });
});
