// The cluster podflow's Kubernetes driver relies on, checked through the real API: the runtime
// images run the runner, the restricted Pod Security profile is enforced by admission, the
// worker's RBAC is exactly what it needs, and exec/logs reach the kubelet over TLS.
import * as k8s from '@kubernetes/client-node';
import { DEFAULT_RUNNER_LIMITS, type RunnerRequest } from '@podflow/protocol';
import { parseRunnerOutput } from '@podflow/runner';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import {
  RESTRICTED_CONTAINER, RUNTIME_IMAGES, SANDBOX_NAMESPACE, TEST_LABEL, WORKER_NAMESPACE, WORKER_SERVICE_ACCOUNT,
  adminConfig, deleteTestPods, isApiError, isFinished, uniqueName, waitForPod, workerConfig,
} from './support/kube';

const RUN_LABEL = uniqueName('cluster');
const admin = adminConfig();
const core = admin.makeApiClient(k8s.CoreV1Api);

/** A pod that satisfies the restricted profile and runs `command` once. */
function restrictedPod(name: string, image: string, command: string[], env: k8s.V1EnvVar[] = []): k8s.V1Pod {
  return {
    metadata: { name, labels: { [TEST_LABEL]: RUN_LABEL } },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{
        name: 'main',
        image,
        imagePullPolicy: 'IfNotPresent',
        command,
        env,
        securityContext: RESTRICTED_CONTAINER,
        resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
        volumeMounts: [{ name: 'home', mountPath: '/home/user' }, { name: 'tmp', mountPath: '/tmp' }],
      }],
      volumes: [{ name: 'home', emptyDir: { sizeLimit: '64Mi' } }, { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }],
    },
  };
}

/** Runs the image's runner on `request` (given through an env variable) and returns its log. */
async function runRunner(image: string, runnerCommand: string, request: RunnerRequest): Promise<string> {
  const name = uniqueName('runner');
  const pod = restrictedPod(name, image, ['sh', '-c', `printf '%s' "$PODFLOW_REQUEST" | ${runnerCommand}`], [
    { name: 'PODFLOW_REQUEST', value: JSON.stringify(request) },
  ]);
  await core.createNamespacedPod({ namespace: SANDBOX_NAMESPACE, body: pod });
  const finished = await waitForPod(admin, SANDBOX_NAMESPACE, name, isFinished);
  const log = await core.readNamespacedPodLog({ name, namespace: SANDBOX_NAMESPACE, container: 'main' });
  expect({ phase: finished?.status?.phase, log }).toEqual({ phase: 'Succeeded', log: expect.any(String) });
  return log;
}

/** The `message` of the Status an API error carries. */
function apiMessage(error: unknown): string {
  if (!isApiError(error)) throw new Error(`expected an API error, got ${String(error)}`);
  return (JSON.parse(error.body) as { message: string }).message;
}

function request(language: RunnerRequest['language'], code: string, args: RunnerRequest['args']): RunnerRequest {
  return { language, code, args, workdir: '/home/user', limits: DEFAULT_RUNNER_LIMITS, nonce: randomUUID() };
}

afterAll(async () => {
  await deleteTestPods(admin, SANDBOX_NAMESPACE, RUN_LABEL);
});

describe('runtime images', () => {
  it('runtime-python runs the runner on a trivial main; the result comes back through the pod log API', async () => {
    const req = request('python', 'import platform\ndef main(a, b):\n    return {"sum": a + b, "python": platform.python_version()}\n', { a: 2, b: 40 });
    const log = await runRunner(RUNTIME_IMAGES.python, 'python3 -I -u /opt/podflow/runner/podflow_runner.py', req);
    const response = parseRunnerOutput(log, req.nonce);
    expect(response).toMatchObject({ ok: true, output: { sum: 42, python: expect.stringMatching(/^3\.\d+\.\d+$/) } });
  });

  it('runtime-node runs the runner on a trivial TypeScript main; the result comes back through the pod log API', async () => {
    const code = 'export function main({ words }: { words: string[] }): { count: number; node: string } {\n  return { count: words.length, node: process.version };\n}\n';
    const req = request('typescript', code, { words: ['a', 'b', 'c'] });
    const log = await runRunner(RUNTIME_IMAGES.node, 'node /opt/podflow/runner/node-runner.js', req);
    const response = parseRunnerOutput(log, req.nonce);
    expect(response).toMatchObject({ ok: true, output: { count: 3, node: expect.stringMatching(/^v\d+\./) } });
  });

  it('the runners see a read-only root, a writable /home/user, and run as uid 1000 without capabilities', async () => {
    const code = [
      'import os',
      'def main():',
      '    try:',
      '        open("/opt/podflow/x", "w")',
      '        root = "writable"',
      '    except OSError as error:',
      '        root = type(error).__name__',
      '    with open("/home/user/out.txt", "w") as f:',
      '        f.write("ok")',
      '    status = open("/proc/self/status").read()',
      '    cap_eff = [line.split()[1] for line in status.splitlines() if line.startswith("CapEff")][0]',
      '    return {"uid": os.getuid(), "root": root, "capEff": cap_eff}',
      '',
    ].join('\n');
    const req = request('python', code, {});
    const response = parseRunnerOutput(await runRunner(RUNTIME_IMAGES.python, 'python3 -I -u /opt/podflow/runner/podflow_runner.py', req), req.nonce);
    expect(response).toMatchObject({ ok: true, output: { uid: 1000, root: 'OSError', capEff: '0000000000000000' } });
    expect(response?.files).toEqual([expect.objectContaining({ path: 'out.txt', size: 2 })]);
  });
});

describe('Pod Security admission (restricted, enforced on the sandbox namespace)', () => {
  it('rejects a pod that runs as root on the host network, naming the violated checks', async () => {
    const pod = restrictedPod(uniqueName('root'), RUNTIME_IMAGES.python, ['true']);
    pod.spec!.hostNetwork = true;
    pod.spec!.securityContext = {};
    pod.spec!.containers[0].securityContext = { runAsUser: 0 };
    const rejection = await core.createNamespacedPod({ namespace: SANDBOX_NAMESPACE, body: pod }).then(() => undefined, (error: unknown) => error);
    expect(isApiError(rejection)).toBe(true);
    const { code } = rejection as { code: number };
    const message = apiMessage(rejection);
    expect(code).toBe(403);
    expect(message).toContain('violates PodSecurity "restricted:latest"');
    expect(message).toContain('host namespaces (hostNetwork=true)');
    expect(message).toContain('runAsNonRoot != true');
    expect(message).toContain('runAsUser=0');
    expect(message).toContain('seccompProfile');
  });

  it('refuses privileged containers outright (the API server runs with --allow-privileged=false)', async () => {
    const pod = restrictedPod(uniqueName('privileged'), RUNTIME_IMAGES.python, ['true']);
    pod.spec!.containers[0].securityContext = { ...RESTRICTED_CONTAINER, privileged: true };
    const rejection = await core.createNamespacedPod({ namespace: SANDBOX_NAMESPACE, body: pod }).then(() => undefined, (error: unknown) => error);
    expect(rejection).toMatchObject({ code: 422 });
    expect(apiMessage(rejection)).toContain('privileged: Forbidden: disallowed by cluster policy');
  });

  it('rejects a pod that keeps capabilities or allows privilege escalation', async () => {
    const pod = restrictedPod(uniqueName('caps'), RUNTIME_IMAGES.python, ['true']);
    pod.spec!.containers[0].securityContext = { ...RESTRICTED_CONTAINER, allowPrivilegeEscalation: true, capabilities: { drop: ['ALL'], add: ['NET_RAW'] } };
    const rejection = await core.createNamespacedPod({ namespace: SANDBOX_NAMESPACE, body: pod }).then(() => undefined, (error: unknown) => error);
    expect(rejection).toMatchObject({ code: 403 });
    expect(apiMessage(rejection)).toContain('violates PodSecurity "restricted:latest"');
    expect(apiMessage(rejection)).toContain('allowPrivilegeEscalation != false');
    expect(apiMessage(rejection)).toContain('unrestricted capabilities (container "main" must not include "NET_RAW" in securityContext.capabilities.add)');
  });

  it('admits the same pod once it is compliant (the checks above are not blanket denials)', async () => {
    const name = uniqueName('ok');
    await core.createNamespacedPod({ namespace: SANDBOX_NAMESPACE, body: restrictedPod(name, RUNTIME_IMAGES.python, ['true']) });
    const finished = await waitForPod(admin, SANDBOX_NAMESPACE, name, isFinished);
    expect(finished?.status?.phase).toBe('Succeeded');
  });
});

describe('the worker ServiceAccount (RBAC)', () => {
  type Check = [verb: string, resource: string, namespace: string | undefined, subresource?: string];
  const allowed: Check[] = [
    ['create', 'pods', SANDBOX_NAMESPACE],
    ['get', 'pods', SANDBOX_NAMESPACE],
    ['list', 'pods', SANDBOX_NAMESPACE],
    ['watch', 'pods', SANDBOX_NAMESPACE],
    ['delete', 'pods', SANDBOX_NAMESPACE],
    // Claiming a warm pod is a JSON patch of its labels (warm-pods.ts). It grants nothing that
    // creating pods does not: a pod's spec is immutable but for its image and deadline.
    ['patch', 'pods', SANDBOX_NAMESPACE],
    ['get', 'pods', SANDBOX_NAMESPACE, 'log'],
    ['create', 'pods', SANDBOX_NAMESPACE, 'attach'],
    ['list', 'events', SANDBOX_NAMESPACE],
  ];
  const denied: Check[] = [
    ['get', 'secrets', 'kube-system'],
    ['list', 'secrets', 'default'],
    ['get', 'secrets', WORKER_NAMESPACE],
    ['list', 'secrets', SANDBOX_NAMESPACE],
    ['create', 'secrets', SANDBOX_NAMESPACE],
    ['create', 'pods', SANDBOX_NAMESPACE, 'exec'],
    ['list', 'nodes', undefined],
    ['get', 'nodes', undefined],
    ['list', 'pods', undefined],
    ['create', 'pods', 'default'],
    ['create', 'pods', WORKER_NAMESPACE],
    ['delete', 'pods', 'kube-system'],
    ['update', 'pods', SANDBOX_NAMESPACE],
    ['create', 'rolebindings', SANDBOX_NAMESPACE],
    ['delete', 'networkpolicies', SANDBOX_NAMESPACE],
    ['patch', 'namespaces', undefined],
    ['create', 'serviceaccounts', SANDBOX_NAMESPACE, 'token'],
  ];

  let authorization: k8s.AuthorizationV1Api;
  beforeAll(async () => {
    authorization = (await workerConfig(admin)).makeApiClient(k8s.AuthorizationV1Api);
  });

  async function canI([verb, resource, namespace, subresource]: Check): Promise<boolean> {
    const review = await authorization.createSelfSubjectAccessReview({
      body: { spec: { resourceAttributes: { verb, resource, namespace, subresource, group: resource === 'rolebindings' ? 'rbac.authorization.k8s.io' : resource === 'networkpolicies' ? 'networking.k8s.io' : '' } } },
    });
    return review.status?.allowed === true;
  }

  const describeCheck = ([verb, resource, namespace, subresource]: Check) =>
    `${verb} ${resource}${subresource ? `/${subresource}` : ''} ${namespace ? `in ${namespace}` : 'cluster-wide'}`;

  it('authenticates as the ServiceAccount', async () => {
    const review = await (await workerConfig(admin)).makeApiClient(k8s.AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    expect(review.status?.userInfo?.username).toBe(`system:serviceaccount:${WORKER_NAMESPACE}:${WORKER_SERVICE_ACCOUNT}`);
  });

  it.each(allowed.map((check) => [describeCheck(check), check] as const))('may %s', async (_, check) => {
    expect(await canI(check)).toBe(true);
  });

  it.each(denied.map((check) => [describeCheck(check), check] as const))('may not %s', async (_, check) => {
    expect(await canI(check)).toBe(false);
  });

  it('is refused by the API itself, not only by the review: listing nodes fails with 403', async () => {
    const core = (await workerConfig(admin)).makeApiClient(k8s.CoreV1Api);
    await expect(core.listNode()).rejects.toMatchObject({ code: 403 });
  });
});

describe('kubelet streaming through the API (TLS between apiserver and kubelet)', () => {
  it('execs a command in a running sandbox pod and reads its output', async () => {
    const name = uniqueName('exec');
    await core.createNamespacedPod({ namespace: SANDBOX_NAMESPACE, body: restrictedPod(name, RUNTIME_IMAGES.python, ['sleep', '300']) });
    await waitForPod(admin, SANDBOX_NAMESPACE, name, (pod) => pod.status?.phase === 'Running');
    const stdout = new PassThrough();
    let output = '';
    stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    const status = await new Promise<k8s.V1Status>((resolve, reject) => {
      new k8s.Exec(admin)
        .exec(SANDBOX_NAMESPACE, name, 'main', ['python3', '-c', 'import os; print("uid", os.getuid(), open("/etc/debian_version").read().strip())'], stdout, null, null, false, resolve)
        .catch(reject);
    });
    expect(status.status).toBe('Success');
    expect(output).toMatch(/^uid 1000 12\.\d+/);
  });
});

describe('cluster set-up', () => {
  it('labels the sandbox namespace to enforce the restricted profile', async () => {
    const namespace = await core.readNamespace({ name: SANDBOX_NAMESPACE });
    expect(namespace.metadata?.labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'restricted' });
  });

  it('has a deny-all NetworkPolicy for sandbox pods (ingress and egress)', async () => {
    const networking = admin.makeApiClient(k8s.NetworkingV1Api);
    const policy = await networking.readNamespacedNetworkPolicy({ name: 'sandbox-deny-all', namespace: SANDBOX_NAMESPACE });
    expect(policy.spec).toMatchObject({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    expect(policy.spec?.ingress ?? []).toEqual([]);
    expect(policy.spec?.egress ?? []).toEqual([]);
  });

  it('opens egress only to pods labelled granted, and never to private, link-local or loopback ranges', async () => {
    const networking = admin.makeApiClient(k8s.NetworkingV1Api);
    const policy = await networking.readNamespacedNetworkPolicy({ name: 'sandbox-egress-granted', namespace: SANDBOX_NAMESPACE });
    expect(policy.spec?.podSelector).toEqual({ matchLabels: { 'podflow.dev/role': 'sandbox', 'podflow.dev/egress': 'granted' } });
    expect(policy.spec?.policyTypes).toEqual(['Egress']);
    const world = policy.spec?.egress?.[0]?.to?.[0]?.ipBlock;
    expect(world?.cidr).toBe('0.0.0.0/0');
    expect(world?.except).toEqual(expect.arrayContaining(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '127.0.0.0/8', '100.64.0.0/10']));
  });
});
