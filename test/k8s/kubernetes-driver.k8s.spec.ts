// The kubernetes sandbox driver against the real cluster, as the worker's ServiceAccount: one pod
// per execution, every failure mode with its error code, large inputs and files through the API,
// adoption of an existing pod, and no pod left behind.
import * as k8s from '@kubernetes/client-node';
import { LABELS, executionLabel, podNameFor, type SandboxOutcome, type SandboxRequest } from '@podflow/sandbox';
import { KubernetesDriver } from '@podflow/sandbox/kubernetes';
import { forgedPythonAnswer } from '@podflow/sandbox/testing';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { RUNTIME_IMAGES, SANDBOX_NAMESPACE, adminConfig, waitForPod, waitForPodGone, workerConfig } from './support/kube';

const admin = adminConfig();
const adminCore = admin.makeApiClient(k8s.CoreV1Api);
let driver: KubernetesDriver;

function newDriver(config: k8s.KubeConfig, overrides: Partial<ConstructorParameters<typeof KubernetesDriver>[0]> = {}): KubernetesDriver {
  return new KubernetesDriver({
    kubeConfig: config,
    workerId: 'driver-test',
    startTimeoutMs: 60_000,
    placement: {
      namespace: SANDBOX_NAMESPACE,
      images: RUNTIME_IMAGES,
      imagePullPolicy: 'IfNotPresent',
      homeSizeLimit: '256Mi',
      tmpSizeLimit: '64Mi',
    },
    ...overrides,
  });
}

beforeAll(async () => {
  driver = newDriver(await workerConfig(admin));
});

afterAll(async () => {
  await driver.close();
});

function request(language: SandboxRequest['language'], code: string, args: SandboxRequest['args'] = {}, extra: Partial<SandboxRequest> = {}): SandboxRequest {
  const runId = randomUUID();
  return { executionId: `${runId}.main.1`, tenantId: 'acme', runId, nodeId: 'main', attempt: 1, language, code, args, timeoutMs: 30_000, dependencies: [], network: false, ...extra };
}

async function podExists(executionId: string): Promise<boolean> {
  return adminCore.readNamespacedPod({ name: podNameFor(executionId), namespace: SANDBOX_NAMESPACE }).then(() => true, () => false);
}

/** Runs, disposes, and checks the pod is gone afterwards. */
async function run(req: SandboxRequest, signal = new AbortController().signal): Promise<SandboxOutcome> {
  const outcome = await driver.execute(req, signal);
  await outcome.dispose();
  await waitForPodGone(admin, SANDBOX_NAMESPACE, podNameFor(req.executionId), 30_000);
  return outcome;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('KubernetesDriver', () => {
  it('runs a Python node in its own pod and returns its output and logs', async () => {
    const outcome = await run(request('python', 'import os\ndef main(a, b):\n    print("adding")\n    return {"sum": a + b, "uid": os.getuid()}\n', { a: 2, b: 40 }));
    expect(outcome).toMatchObject({ status: 'succeeded', output: { sum: 42, uid: 1000 }, logs: { stdout: 'adding\n' } });
  });

  it('hands the pod no secret: no worker environment in any process, no service account token', async () => {
    process.env.PODFLOW_K8S_SPEC_SECRET = 'podflow-k8s-secret-5d1e';
    try {
      const code = [
        'import os',
        'def main(args):',
        '    seen = []',
        '    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:',
        '        for name in ("environ", "cmdline"):',
        '            try:',
        '                seen.append(open(f"/proc/{pid}/{name}", "rb").read().decode("latin-1"))',
        '            except OSError as exc:',
        '                seen.append(type(exc).__name__)',
        '    return {"seen": seen, "token": os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token")}',
      ].join('\n');
      const outcome = await run(request('python', code));
      expect(outcome.status).toBe('succeeded');
      const seen = (outcome.output!.seen as string[]).join('\n');
      expect(seen).not.toContain('podflow-k8s-secret-5d1e');
      expect(seen).not.toMatch(/REDIS_URL|PODFLOW_API_KEYS|FILE_URL_SECRET|AWS_SECRET_ACCESS_KEY/);
      expect(outcome.output!.token).toBe(false);
    } finally {
      delete process.env.PODFLOW_K8S_SPEC_SECRET;
    }
  });

  it('runs TypeScript in the node runtime', async () => {
    const outcome = await run(request('typescript', 'export const main = ({ xs }: { xs: number[] }) => ({ total: xs.reduce((a, b) => a + b, 0) });\n', { xs: [1, 2, 3] }));
    expect(outcome).toMatchObject({ status: 'succeeded', output: { total: 6 } });
  });

  it('carries 5 MiB of arguments in and a 20 MiB file out through the API', async () => {
    const blob = randomBytes(5 * 1024 * 1024 * 0.75).toString('base64');
    const code = [
      'import hashlib, os',
      'def main(blob):',
      '    data = os.urandom(20 * 1024 * 1024)',
      '    with open("big.bin", "wb") as f:',
      '        f.write(data)',
      '    with open("report.csv", "w") as f:',
      '        f.write("a,b\\n1,2\\n")',
      '    return {"argLength": len(blob), "argSha": hashlib.sha256(blob.encode()).hexdigest(), "fileSha": hashlib.sha256(data).hexdigest()}',
      '',
    ].join('\n');
    const req = request('python', code, { blob }, { resources: { memory: '512Mi' } });
    const outcome = await driver.execute(req, new AbortController().signal);
    try {
      expect(outcome.status).toBe('succeeded');
      expect(outcome.output).toEqual({ argLength: blob.length, argSha: sha256(Buffer.from(blob)), fileSha: expect.any(String) });
      const big = outcome.files.find((file) => file.path === 'big.bin')!;
      const csv = outcome.files.find((file) => file.path === 'report.csv')!;
      expect(big.size).toBe(20 * 1024 * 1024);
      const bigBytes = await readAll(big.open());
      expect(sha256(bigBytes)).toBe(outcome.output!.fileSha);
      expect(big.sha256).toBe(outcome.output!.fileSha);
      expect((await readAll(csv.open())).toString()).toBe('a,b\n1,2\n');
    } finally {
      await outcome.dispose();
    }
  });

  it('ends a node past its timeout as EXECUTION_TIMEOUT and deletes the pod', async () => {
    const outcome = await run(request('python', 'import time\ndef main():\n    time.sleep(60)\n    return {}\n', {}, { timeoutMs: 2_000 }));
    expect(outcome).toMatchObject({ status: 'failed', error: { code: 'EXECUTION_TIMEOUT' } });
  });

  it('reports an allocation past a 64Mi limit as MEMORY_LIMIT_EXCEEDED (the container was OOMKilled)', async () => {
    const code = 'def main():\n    blocks = []\n    for _ in range(64):\n        blocks.append(bytearray(16 * 1024 * 1024))\n    return {"n": len(blocks)}\n';
    const outcome = await run(request('python', code, {}, { resources: { memory: '64Mi' } }));
    expect(outcome).toMatchObject({ status: 'failed', error: { code: 'MEMORY_LIMIT_EXCEEDED', message: expect.stringContaining('OOMKilled') } });
  });

  it('passes the runner\'s own failures through: an exception and an invalid output', async () => {
    const raised = await run(request('python', 'def main():\n    raise ValueError("bad input")\n'));
    expect(raised).toMatchObject({ status: 'failed', error: { code: 'CODE_EXECUTION_FAILED', type: 'ValueError', message: 'bad input' } });
    const invalid = await run(request('javascript', 'function main() { return { when: new Date(0) }; }\n'));
    expect(invalid).toMatchObject({ status: 'failed', error: { code: 'OUTPUT_INVALID' } });
  });

  it('deletes the pod at once on cancel', async () => {
    const controller = new AbortController();
    const req = request('python', 'import time\ndef main():\n    time.sleep(60)\n    return {}\n');
    const pending = run(req, controller.signal);
    await waitForPod(admin, SANDBOX_NAMESPACE, podNameFor(req.executionId), (pod) => pod.status?.phase === 'Running');
    controller.abort();
    // The pod goes well before the code's 60 s sleep would have ended.
    await waitForPodGone(admin, SANDBOX_NAMESPACE, podNameFor(req.executionId), 20_000);
    expect(await pending).toMatchObject({ status: 'failed', error: { code: 'CANCELED' } });
  });

  it('ends with SANDBOX_START_TIMEOUT naming the reason when the image does not exist', async () => {
    const missing = newDriver(await workerConfig(admin), {
      startTimeoutMs: 8_000,
      placement: { namespace: SANDBOX_NAMESPACE, images: { python: 'podflow/does-not-exist:1', node: 'podflow/does-not-exist:1' }, imagePullPolicy: 'IfNotPresent', homeSizeLimit: '64Mi', tmpSizeLimit: '64Mi' },
    });
    const req = request('python', 'def main():\n    return {}\n');
    const outcome = await missing.execute(req, new AbortController().signal);
    await outcome.dispose();
    expect(outcome).toMatchObject({ status: 'failed', error: { code: 'SANDBOX_START_TIMEOUT' } });
    expect(outcome.error!.message).toMatch(/ErrImagePull|ImagePullBackOff/);
    expect(outcome.error!.message).toContain('podflow/does-not-exist:1');
    await waitForPodGone(admin, SANDBOX_NAMESPACE, podNameFor(req.executionId), 30_000);
  });

  it('reports SANDBOX_LOST when the pod is deleted from outside mid-run', async () => {
    const req = request('python', 'import time\ndef main():\n    time.sleep(30)\n    return {}\n');
    const pending = run(req);
    await waitForPod(admin, SANDBOX_NAMESPACE, podNameFor(req.executionId), (pod) => pod.status?.phase === 'Running');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await adminCore.deleteNamespacedPod({ name: podNameFor(req.executionId), namespace: SANDBOX_NAMESPACE, gracePeriodSeconds: 0 });
    expect(await pending).toMatchObject({ status: 'failed', error: { code: 'SANDBOX_LOST' } });
  });

  it('adopts the running pod of an execution a second worker is given, instead of running the code again', async () => {
    const code = 'import time, uuid\ndef main():\n    time.sleep(4)\n    return {"run": str(uuid.uuid4())}\n';
    const req = request('python', code);
    const first = driver.execute(req, new AbortController().signal);
    await waitForPod(admin, SANDBOX_NAMESPACE, podNameFor(req.executionId), (pod) => pod.status?.phase === 'Running');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const second = await driver.execute(req, new AbortController().signal);
    const firstOutcome = await first;
    expect(second).toMatchObject({ status: 'succeeded', output: { run: expect.any(String) } });
    // The same single run of the code answered both.
    expect(second.output).toEqual(firstOutcome.output);
    await firstOutcome.dispose();
    await second.dispose();
  });

  it('adopts a finished pod and reads its answer from the log', async () => {
    const req = request('python', 'import uuid\ndef main():\n    return {"run": str(uuid.uuid4())}\n');
    const first = await driver.execute(req, new AbortController().signal);
    // The worker "died" before disposing: the finished pod is still there.
    expect(await podExists(req.executionId)).toBe(true);
    const again = await driver.execute(req, new AbortController().signal);
    expect(again).toMatchObject({ status: 'succeeded', output: first.output });
    await again.dispose();
    await first.dispose();
  });

  it('refuses, unread, an answer the code wrote that is longer than any runner writes or holds too many objects (one parsed took 72 s and 2.6 GB of a worker)', async () => {
    const logs = { stdout: '', stderr: '', truncated: false };
    const forged = (output: string) => forgedPythonAnswer({ ok: true, output: {}, files: [], logs, durationMs: 1 }, { before: [`answer["output"] = ${output}`] });
    // Under the stdout cap (117 MiB, files share the stream), over what an answer can be (13.5 MiB).
    const long = await run(request('python', forged('{"x": "y" * (20 * 1024 * 1024)}')));
    expect(long).toMatchObject({
      status: 'failed',
      error: { code: 'OUTPUT_TOO_LARGE', message: expect.stringMatching(/refused before it was read: the answer is \d+ bytes of JSON, more than the 13500416 a runner writes at most/) },
    });
    const many = await run(request('python', forged('{"x": [{}] * 3000000}')));
    expect(many).toMatchObject({ status: 'failed', error: { code: 'OUTPUT_TOO_LARGE', message: expect.stringContaining('the answer holds more than 524452 objects and arrays') } });
  });

  it('labels its pods so they can be found per execution', async () => {
    const req = request('python', 'import time\ndef main():\n    time.sleep(3)\n    return {}\n');
    const pending = driver.execute(req, new AbortController().signal);
    const pod = await waitForPod(admin, SANDBOX_NAMESPACE, podNameFor(req.executionId), (p) => p.status?.phase === 'Running');
    expect(pod?.metadata?.labels).toMatchObject({ [LABELS.execution]: executionLabel(req.executionId), [LABELS.tenant]: 'acme', [LABELS.worker]: 'driver-test' });
    const listed = await adminCore.listNamespacedPod({ namespace: SANDBOX_NAMESPACE, labelSelector: `${LABELS.execution}=${executionLabel(req.executionId)}` });
    expect(listed.items.map((p) => p.metadata?.name)).toEqual([podNameFor(req.executionId)]);
    await (await pending).dispose();
  });
});
