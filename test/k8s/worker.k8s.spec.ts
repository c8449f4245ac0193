// podflow end to end with SANDBOX_DRIVER=kubernetes: real coordinator and worker processes, real
// Redis, every Code node in its own pod on the real cluster. The examples pass unchanged; failures
// keep their error codes and reach error branches; a killed worker's execution is adopted, not
// re-run; a pod deleted from outside is retried; concurrency bounds the number of pods.
import * as k8s from '@kubernetes/client-node';
import { LABELS, executionLabel, labelValue } from '@podflow/sandbox';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { EXAMPLE_CASES } from '../support/example-cases';
import { ROOT, TENANT, runToEnd, startStack, type Stack } from '../support/stack';
import { WRITTEN_ORDER, writtenOrderOf, writtenOrderWorkflow } from '../support/written-order';
import { LAYER_CA_CONFIGMAP, LAYER_VOLUME_CLAIM, RUNTIME_IMAGES, SANDBOX_NAMESPACE, adminConfig, eventually, workerConfig } from './support/kube';

const admin = adminConfig();
const core = admin.makeApiClient(k8s.CoreV1Api);
const tenantSelector = `${LABELS.tenant}=${labelValue(TENANT)}`;
let kubeconfigDir: string;
let workerEnv: Record<string, string>;

/** Pods of this tenant in the sandbox namespace, as the API sees them now. */
async function sandboxPods(selector = tenantSelector): Promise<k8s.V1Pod[]> {
  return (await core.listNamespacedPod({ namespace: SANDBOX_NAMESPACE, labelSelector: selector })).items;
}

/** Counts pods of `selector` that exist at the same time, and every distinct pod seen. */
async function countPods(selector: string) {
  const live = new Set<string>();
  const seen = new Set<string>();
  let max = 0;
  const request = await new k8s.Watch(admin).watch(`/api/v1/namespaces/${SANDBOX_NAMESPACE}/pods`, { labelSelector: selector }, (type, pod: k8s.V1Pod) => {
    const uid = pod.metadata!.uid!;
    seen.add(uid);
    if (type === 'DELETED') live.delete(uid);
    else if (!pod.metadata?.deletionTimestamp) live.add(uid);
    else live.delete(uid);
    max = Math.max(max, live.size);
  }, () => undefined);
  return { stop: () => request.abort(), get max() { return max; }, get seen() { return seen.size; } };
}

beforeAll(async () => {
  kubeconfigDir = mkdtempSync(join(tmpdir(), 'podflow-k8s-worker-'));
  const kubeconfig = process.env.PODFLOW_WORKER_KUBECONFIG ?? join(kubeconfigDir, 'worker.kubeconfig');
  if (!process.env.PODFLOW_WORKER_KUBECONFIG) writeFileSync(kubeconfig, (await workerConfig(admin)).exportConfig(), { mode: 0o600 });
  workerEnv = {
    SANDBOX_DRIVER: 'kubernetes',
    KUBECONFIG: kubeconfig,
    K8S_NAMESPACE: SANDBOX_NAMESPACE,
    K8S_IMAGE_PYTHON: RUNTIME_IMAGES.python,
    K8S_IMAGE_NODE: RUNTIME_IMAGES.node,
    K8S_REAPER_INTERVAL_MS: '2000',
    K8S_REAPER_MIN_AGE_MS: '5000',
    WORKER_CONCURRENCY: '4',
    K8S_LAYER_VOLUME_CLAIM: LAYER_VOLUME_CLAIM,
    ...(LAYER_CA_CONFIGMAP ? { K8S_LAYER_CA_CONFIGMAP: LAYER_CA_CONFIGMAP } : {}),
  };
});

/** Watches to end even when a test fails half-way. */
const stopAfter: Array<() => void> = [];
afterEach(() => stopAfter.splice(0).forEach((stop) => stop()));
afterAll(() => rmSync(kubeconfigDir, { recursive: true, force: true }));

describe('with SANDBOX_DRIVER=kubernetes', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 1, workerEnv });
  });
  afterAll(() => stack?.stop());

  describe.each(EXAMPLE_CASES)('example: $name', ({ file, inputs, check }) => {
    it('runs unchanged, every node in a pod', async () => {
      const run = await runToEnd(stack, parse(readFileSync(join(ROOT, 'examples', file), 'utf8')), inputs);
      expect({ status: run.status, error: run.error }).toEqual({ status: 'succeeded', error: undefined });
      await check(run.outputs as Record<string, unknown>, stack);
    });
  });

  it('routes timeout, OOM, exception and invalid output to their error branches with their codes, and leaves no pod', async () => {
    const failing = {
      slow: 'import time\ndef main(args):\n    time.sleep(60)\n    return {}\n',
      hungry: 'def main(args):\n    blocks = [bytearray(16 * 1024 * 1024) for _ in range(64)]\n    return {"n": len(blocks)}\n',
      raises: 'def main(args):\n    raise ValueError("bad row 7")\n',
      invalid: 'def main(args):\n    return {"s": {1, 2}}\n',
    };
    const run = await runToEnd(stack, {
      id: 'k8s-failures',
      nodes: [
        { id: 'slow', language: 'python', timeout: '2s', code: failing.slow },
        { id: 'hungry', language: 'python', resources: { memory: '64Mi' }, code: failing.hungry },
        { id: 'raises', language: 'python', code: failing.raises },
        { id: 'invalid', language: 'python', code: failing.invalid },
        ...Object.keys(failing).map((id) => ({ id: `${id}_handler`, language: 'javascript', code: 'function main(args) { return { code: args.error.code }; }' })),
      ],
      edges: Object.keys(failing).map((id) => ({ from: id, to: `${id}_handler`, on: 'failure' })),
    });
    expect(run.status).toBe('succeeded');
    expect(run.outputs).toEqual({
      slow_handler: { code: 'EXECUTION_TIMEOUT' },
      hungry_handler: { code: 'MEMORY_LIMIT_EXCEEDED' },
      raises_handler: { code: 'CODE_EXECUTION_FAILED' },
      invalid_handler: { code: 'OUTPUT_INVALID' },
    });
    await eventually(async () => (await sandboxPods(`${LABELS.run}=${labelValue(run.id)}`)).length === 0, 'the run\'s pods to be gone');
  });

  it('cancels a running run by deleting its pod', async () => {
    const { id } = await stack.client.submitRun({ workflow: { id: 'k8s-cancel', nodes: [{ id: 'sleepy', language: 'python', code: 'import time\ndef main(args):\n    time.sleep(120)\n    return {}\n' }], edges: [] } });
    const runPods = `${LABELS.run}=${labelValue(id)}`;
    await eventually(async () => (await sandboxPods(runPods)).some((pod) => pod.status?.phase === 'Running'), 'the pod to run');
    await stack.client.cancelRun(id);
    const run = await stack.client.waitForRun(id, 100, 30_000);
    expect(run.status).toBe('canceled');
    await eventually(async () => (await sandboxPods(runPods)).length === 0, 'the canceled run\'s pod to be deleted', 20_000);
  });

  it('retries an execution whose pod is deleted from outside (SANDBOX_LOST), and the run finishes', async () => {
    const { id } = await stack.client.submitRun({
      workflow: { id: 'k8s-lost', nodes: [{ id: 'work', language: 'python', code: 'import time\ndef main(args):\n    time.sleep(4)\n    return {"done": True}\n' }], edges: [] },
    });
    const runPods = `${LABELS.run}=${labelValue(id)}`;
    await eventually(async () => (await sandboxPods(runPods)).some((pod) => pod.status?.phase === 'Running'), 'the first pod to run');
    const [first] = await sandboxPods(runPods);
    await core.deleteNamespacedPod({ name: first!.metadata!.name!, namespace: SANDBOX_NAMESPACE, gracePeriodSeconds: 0 });
    const run = await stack.client.waitForRun(id, 100, 90_000);
    expect(run.status).toBe('succeeded');
    expect(run.nodes.work).toMatchObject({ status: 'succeeded', attempts: 2, output: { done: true } });
  });

  it('returns each node\'s files in the order they were written (issue 15), from pods', async () => {
    const run = await runToEnd(stack, writtenOrderWorkflow);
    expect({ status: run.status, error: run.error }).toEqual({ status: 'succeeded', error: undefined });
    expect(writtenOrderOf(run)).toEqual({ py: WRITTEN_ORDER, js: WRITTEN_ORDER, ts: WRITTEN_ORDER });
  });

  it('runs nodes with declared dependencies from layers built by builder pods', async () => {
    const run = await runToEnd(
      stack,
      {
        id: 'k8s-layers',
        nodes: [
          { id: 'table', type: 'code', language: 'python', dependencies: ['tabulate==0.9.0'], code: 'from tabulate import tabulate\ndef main(args):\n    return {"table": tabulate([[1, 2]], tablefmt="plain")}\n' },
          { id: 'date', type: 'code', language: 'typescript', dependencies: ['dayjs@1.11.13'], code: "import dayjs from 'dayjs';\nexport function main() { return { next: dayjs('2024-02-28').add(1, 'day').format('YYYY-MM-DD') }; }\n" },
        ],
      },
      {},
    );
    expect({ status: run.status, error: run.error }).toEqual({ status: 'succeeded', error: undefined });
    expect(run.nodes.table!.output).toEqual({ table: '1  2' });
    expect(run.nodes.date!.output).toEqual({ next: '2024-02-29' });
    await eventually(async () => (await sandboxPods()).length === 0, 'the sandbox pods to be deleted');
  });
});

describe('a worker killed while its pod runs', () => {
  it('is replaced by one that adopts the pod: the code runs exactly once, the run finishes, and no pod is left', async () => {
    const stack = await startStack({ workers: 1, workerEnv });
    try {
      // The node prints a marker and sleeps; its pod is the only place the code can run.
      const code = 'import time, uuid\ndef main(args):\n    marker = str(uuid.uuid4())\n    print("ran", marker)\n    time.sleep(8)\n    return {"marker": marker}\n';
      const { id } = await stack.client.submitRun({ workflow: { id: 'k8s-kill', nodes: [{ id: 'once', language: 'python', code }], edges: [] } });
      const executionPods = `${LABELS.execution}=${executionLabel(`${id}.once.1`)}`;
      const counter = await countPods(executionPods);
      stopAfter.push(counter.stop);
      await eventually(async () => (await sandboxPods(executionPods)).some((pod) => pod.status?.phase === 'Running'), 'the pod to run');
      stack.workers[0]!.kill('SIGKILL');
      await new Promise((resolve) => stack.workers[0]!.once('exit', resolve));
      await stack.startWorker();
      const run = await stack.client.waitForRun(id, 100, 120_000);
      expect(run.status).toBe('succeeded');
      expect(run.nodes.once).toMatchObject({ status: 'succeeded', attempts: 1, output: { marker: expect.any(String) } });
      // One pod ever existed for the execution, and its code printed exactly one marker.
      expect(counter.seen).toBe(1);
      expect(run.nodes.once!.logs?.stdout).toBe(`ran ${(run.nodes.once!.output as { marker: string }).marker}\n`);
      counter.stop();
      await eventually(async () => (await sandboxPods(executionPods)).length === 0, 'the pod to be deleted (by the worker or the reaper)', 30_000);
    } finally {
      await stack.stop();
    }
  });
});

describe('50 concurrent executions, worker concurrency 10', () => {
  it('all succeed and never more than 10 pods exist at once', async () => {
    const stack = await startStack({ workers: 1, workerEnv: { ...workerEnv, WORKER_CONCURRENCY: '10' } });
    try {
      const leaves = Array.from({ length: 50 }, (_, i) => ({ id: `leaf${i}`, language: i % 2 ? 'python' : 'javascript', code: i % 2 ? `def main(args):\n    return {"i": ${i}}\n` : `function main() { return { i: ${i} }; }` }));
      const { id } = await stack.client.submitRun({ workflow: { id: 'k8s-fifty', nodes: leaves, edges: [] } });
      const counter = await countPods(`${LABELS.run}=${labelValue(id)}`);
      stopAfter.push(counter.stop);
      const run = await stack.client.waitForRun(id, 200, 300_000);
      counter.stop();
      expect(run.status).toBe('succeeded');
      expect(Object.values(run.nodes).filter((node) => node.status === 'succeeded')).toHaveLength(50);
      expect(counter.seen).toBe(50);
      expect(counter.max).toBeGreaterThan(1);
      expect(counter.max).toBeLessThanOrEqual(10);
    } finally {
      await stack.stop();
    }
  });
});

afterAll(async () => {
  // Whatever a failed test left: the suite never leaves pods behind for the next one.
  const left = await sandboxPods();
  await Promise.all(left.map((pod) => core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace: SANDBOX_NAMESPACE, gracePeriodSeconds: 0 }).catch(() => undefined)));
});
