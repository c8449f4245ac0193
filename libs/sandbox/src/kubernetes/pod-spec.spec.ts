import { buildSandboxPod, buildWarmPod, claimPatch, runnerCommand, warmTemplate, type PodPlacement, type SandboxPodInput } from './pod-spec';
import { ANNOTATIONS, LABELS, executionLabel, labelValue, podNameFor } from './pod-identity';
import { DEFAULT_POD_RESOURCE_POLICY, parseCpuQuantity, resolvePodResources } from './resources';

const MIB = 1024 * 1024;
const placement: PodPlacement = {
  namespace: 'podflow-sandbox',
  images: { python: 'reg.example/podflow/runtime-python:1', node: 'reg.example/podflow/runtime-node:1' },
  imagePullPolicy: 'IfNotPresent',
  homeSizeLimit: '256Mi',
  tmpSizeLimit: '64Mi',
};
const input: SandboxPodInput = {
  executionId: 'run-1.clean up!.2',
  tenantId: 'acme',
  runId: 'run-1',
  nodeId: 'clean up!',
  attempt: 2,
  workerId: 'worker-a',
  language: 'python',
  resources: { cpuMillis: 500, memoryBytes: 256 * MIB, notes: [] },
  requestRatio: 0.5,
  activeDeadlineSeconds: 120,
  deadlineAt: Date.UTC(2026, 10, 20, 12, 0, 0),
};

describe('buildSandboxPod', () => {
  const pod = buildSandboxPod(input, placement);
  const container = pod.spec!.containers[0];

  it('hardens the pod as the restricted Pod Security profile requires', () => {
    expect(pod.spec).toMatchObject({
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
    });
    expect(pod.spec!.hostNetwork).toBeUndefined();
    expect(container.securityContext).toEqual({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
  });

  it('labels a pod for egress only when the execution was granted it, and gives it cluster DNS', () => {
    expect(pod.metadata!.labels).not.toHaveProperty('podflow.dev/egress');
    expect(pod.spec!.dnsPolicy).toBe('Default');
    const granted = buildSandboxPod({ ...input, network: true }, placement);
    expect(granted.metadata!.labels!['podflow.dev/egress']).toBe('granted');
    expect(granted.spec!.dnsPolicy).toBe('ClusterFirst');
  });

  it('mounts only RAM-backed, size-limited emptyDirs at /home/user and /tmp (a hard limit; on disk only an eviction enforces it)', () => {
    expect(pod.spec!.volumes).toEqual([
      { name: 'home', emptyDir: { medium: 'Memory', sizeLimit: '256Mi' } },
      { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } },
    ]);
    expect(container.volumeMounts).toEqual([
      { name: 'home', mountPath: '/home/user' },
      { name: 'tmp', mountPath: '/tmp' },
    ]);
  });

  it('sets limits from the resolved resources and requests at the ratio', () => {
    expect(container.resources).toEqual({
      limits: { cpu: '500m', memory: String(256 * MIB) },
      requests: { cpu: '250m', memory: String(128 * MIB) },
    });
    expect(pod.spec!.activeDeadlineSeconds).toBe(120);
  });

  it('runs the runner as the main process, fed on stdin once', () => {
    expect(container).toMatchObject({ image: placement.images.python, stdin: true, stdinOnce: true, tty: false, workingDir: '/home/user' });
    expect(container.command).toEqual(['python3', '-I', '-u', '/opt/podflow/runner/podflow_runner.py']);
  });

  it('labels the pod under podflow.dev/ with valid values and keeps full ids in annotations', () => {
    expect(pod.metadata!.name).toBe(podNameFor(input.executionId));
    expect(pod.metadata!.labels).toMatchObject({
      [LABELS.tenant]: 'acme',
      [LABELS.run]: 'run-1',
      [LABELS.execution]: executionLabel(input.executionId),
      [LABELS.attempt]: '2',
      [LABELS.worker]: 'worker-a',
    });
    for (const value of Object.values(pod.metadata!.labels!)) expect(value).toMatch(/^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/);
    expect(pod.metadata!.labels![LABELS.node]).toMatch(/^clean-up-[0-9a-f]{16}$/);
    expect(pod.metadata!.annotations).toMatchObject({ [ANNOTATIONS.executionId]: input.executionId, [ANNOTATIONS.deadline]: '2026-11-20T12:00:00.000Z' });
  });

  it('applies optional placement: runtime class, node selector, tolerations, pull secrets', () => {
    const placed = buildSandboxPod(input, {
      ...placement,
      runtimeClassName: 'gvisor',
      nodeSelector: { pool: 'sandbox' },
      tolerations: [{ key: 'sandbox', operator: 'Exists', effect: 'NoSchedule' }],
      imagePullSecrets: ['regcred'],
    });
    expect(placed.spec).toMatchObject({
      runtimeClassName: 'gvisor',
      nodeSelector: { pool: 'sandbox' },
      tolerations: [{ key: 'sandbox', operator: 'Exists', effect: 'NoSchedule' }],
      imagePullSecrets: [{ name: 'regcred' }],
    });
    expect(pod.spec!.runtimeClassName).toBeUndefined();
    expect(pod.spec!.imagePullSecrets).toBeUndefined();
  });

  it('uses the node image for TypeScript and caps V8\'s heap below the memory limit', () => {
    const ts = buildSandboxPod({ ...input, language: 'typescript' }, placement);
    expect(ts.spec!.containers[0].image).toBe(placement.images.node);
    expect(runnerCommand('typescript', 256 * MIB)).toEqual(['node', '--max-old-space-size=192', '/opt/podflow/runner/node-runner.js']);
  });
});

describe('pod identity', () => {
  it('keeps valid label values and shortens others to a readable prefix plus a hash', () => {
    expect(labelValue('acme')).toBe('acme');
    expect(labelValue('a'.repeat(63))).toBe('a'.repeat(63));
    expect(labelValue('a'.repeat(64))).toMatch(/^a{40}-[0-9a-f]{16}$/);
    expect(labelValue('émoji 🚀')).toMatch(/^moji-[0-9a-f]{16}$/);
    expect(labelValue('x.y')).not.toBe(labelValue('x y'));
  });

  it('names one pod per execution, deterministically and within DNS limits', () => {
    expect(podNameFor('r.n.1')).toBe(podNameFor('r.n.1'));
    expect(podNameFor('r.n.1')).not.toBe(podNameFor('r.n.2'));
    expect(podNameFor('r.n.1')).toMatch(/^podflow-[0-9a-f]{24}$/);
  });
});

describe('resources', () => {
  const policy = { ...DEFAULT_POD_RESOURCE_POLICY, maxCpuMillis: 2000, maxMemoryBytes: 1024 * MIB };

  it('parses CPU quantities', () => {
    expect(parseCpuQuantity('500m')).toBe(500);
    expect(parseCpuQuantity('2')).toBe(2000);
    expect(parseCpuQuantity('0.25')).toBe(250);
    expect(parseCpuQuantity('lots')).toBeUndefined();
  });

  it('uses the defaults when the node asks for nothing', () => {
    expect(resolvePodResources(undefined, policy)).toEqual({ cpuMillis: 1000, memoryBytes: 512 * MIB, notes: [] });
  });

  it('clamps requests above the maxima and says so', () => {
    const resolved = resolvePodResources({ cpu: '8', memory: '8Gi' }, policy);
    expect(resolved).toMatchObject({ cpuMillis: 2000, memoryBytes: 1024 * MIB });
    expect(resolved.notes).toEqual([expect.stringContaining('resources.cpu 8 is above the operator maximum 2000m'), expect.stringContaining('resources.memory 8Gi')]);
  });
});

describe('warm pods', () => {
  const warm = buildWarmPod('node', input.resources, 0.5, placement, 'podflow-warm-node-abc', 'worker-a');

  it('carries nothing of a tenant: only its runtime, no deadline, and the hardening of every sandbox pod', () => {
    expect(warm.metadata).toEqual({
      name: 'podflow-warm-node-abc',
      namespace: 'podflow-sandbox',
      labels: { [LABELS.managedBy]: 'podflow', [LABELS.role]: 'warm', [LABELS.runtime]: 'node', [LABELS.worker]: 'worker-a', [LABELS.template]: warmTemplate('node', input.resources, 0.5, placement) },
      annotations: {},
    });
    expect(warm.spec?.activeDeadlineSeconds).toBeUndefined();
    const sandbox = buildSandboxPod({ ...input, language: 'javascript' }, placement);
    expect(warm.spec?.securityContext).toEqual(sandbox.spec?.securityContext);
    expect(warm.spec?.containers[0]?.securityContext).toEqual(sandbox.spec?.containers[0]?.securityContext);
    expect(warm.spec?.containers[0]?.resources).toEqual(sandbox.spec?.containers[0]?.resources);
    expect(warm.spec?.automountServiceAccountToken).toBe(false);
    expect(warm.spec?.containers[0]?.command).toEqual([...runnerCommand('javascript', 256 * MIB), '--prewarm']);
    expect(JSON.stringify(warm)).not.toMatch(/acme|run-1|clean up/);
  });

  it('is labelled with a template that changes with what the pod is (image, runtime class, resources, scheduling), not with its name or worker', () => {
    const template = warmTemplate('node', input.resources, 0.5, placement);
    expect(template).toMatch(/^[0-9a-f]{20}$/);
    expect(buildWarmPod('node', input.resources, 0.5, placement, 'podflow-warm-node-other', 'worker-b').metadata!.labels![LABELS.template]).toBe(template);
    const changed = [
      warmTemplate('python', input.resources, 0.5, placement),
      warmTemplate('node', input.resources, 0.5, { ...placement, runtimeClassName: 'gvisor' }),
      warmTemplate('node', input.resources, 0.5, { ...placement, images: { ...placement.images, node: 'podflow/runtime-node:2' } }),
      warmTemplate('node', { ...input.resources, memoryBytes: 2 * input.resources.memoryBytes }, 0.5, placement),
      warmTemplate('node', input.resources, 0.5, { ...placement, nodeSelector: { pool: 'sandboxes' } }),
    ];
    expect(new Set([template, ...changed]).size).toBe(6);
  });

  it('is claimed by one JSON patch that first tests it is still warm, then labels it as the execution\'s pod', () => {
    const patch = claimPatch({ ...input, nonce: 'n1', activeDeadlineSeconds: 300 }) as Array<{ op: string; path: string; value: unknown }>;
    expect(patch[0]).toEqual({ op: 'test', path: '/metadata/labels/podflow.dev~1role', value: 'warm' });
    expect(patch[1]).toEqual({ op: 'replace', path: '/metadata/labels/podflow.dev~1role', value: 'sandbox' });
    // The same labels and annotations as a pod created for the execution.
    const created = buildSandboxPod(input, placement);
    const labels = Object.fromEntries(patch.filter((op) => op.path.startsWith('/metadata/labels/') && op.op === 'add').map((op) => [op.path.slice('/metadata/labels/'.length).replace('~1', '/'), op.value]));
    expect({ ...labels, [LABELS.role]: 'sandbox', [LABELS.managedBy]: 'podflow' }).toEqual(created.metadata?.labels);
    expect(patch.find((op) => op.path === '/metadata/annotations')?.value).toEqual({ ...created.metadata?.annotations, [ANNOTATIONS.nonce]: 'n1' });
    expect(patch.at(-1)).toEqual({ op: 'add', path: '/spec/activeDeadlineSeconds', value: 300 });
  });
});
