import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ROOT } from '../support/stack';
import { kubectlPath, run } from './support';

// Issue 14: the Helm chart (charts/podflow) against the real cluster of `npm run test:k8s`:
// lint, every ci/*-values.yaml scenario rendered and validated by kubeconform (strict, with the
// cluster's own schemas), a server-side dry run, bad values refused with what to fix, and the
// RBAC it installs, checked with `kubectl auth can-i`.
const CHART = join(ROOT, 'charts/podflow');
const KUBE_VERSION = '1.34.0';
/** Capabilities the KEDA scenario needs (rendered, never installed: the cluster has no KEDA). */
const CRD_APIS = ['keda.sh/v1alpha1/ScaledObject', 'monitoring.coreos.com/v1/ServiceMonitor'];

interface Tools {
  helm: string;
  kubeconform: string;
}

describe('the Helm chart (issue 14)', () => {
  let tools: Tools;
  let kc: string;
  let work: string;
  let schemaLocation: string;

  beforeAll(() => {
    tools = JSON.parse(execFileSync(process.execPath, [join(ROOT, 'scripts/lib/helm-tools.mjs')], { encoding: 'utf8' }).trim()) as Tools;
    kc = kubectlPath();
    work = mkdtempSync(join(tmpdir(), 'podflow-helm-'));
    writeFileSync(join(work, 'openapi-v2.json'), execFileSync(kc, ['get', '--raw', '/openapi/v2'], { maxBuffer: 64 * 1024 * 1024 }));
    schemaLocation = execFileSync(process.execPath, [join(ROOT, 'scripts/lib/kube-schemas.mjs'), join(work, 'openapi-v2.json'), join(work, 'schemas')], { encoding: 'utf8' }).trim();
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const template = (args: string[]) => run(tools.helm, ['template', 'pf', CHART, '--namespace', 'podflow-system', '--kube-version', KUBE_VERSION, ...args]);

  it('has its generated artifacts up to date: the chart README\'s variables and k8s/podflow.yaml', () => {
    const checked = run(process.execPath, [join(ROOT, 'scripts/chart-artifacts.mjs'), '--check']);
    expect({ status: checked.status, stderr: checked.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('passes helm lint --strict', () => {
    const lint = run(tools.helm, ['lint', '--strict', CHART, '--kube-version', KUBE_VERSION]);
    expect({ status: lint.status, out: lint.stderr }).toEqual({ status: 0, out: '' });
  });

  it.each(readdirSync(join(CHART, 'ci')).filter((f) => f.endsWith('-values.yaml')))('renders %s, and kubeconform (strict, the cluster\'s schemas) finds every resource valid', (file) => {
    const rendered = template(['-f', join(CHART, 'ci', file), ...CRD_APIS.flatMap((api) => ['--api-versions', api])]);
    expect({ status: rendered.status, stderr: rendered.stderr }).toEqual({ status: 0, stderr: '' });
    const kinds = [...rendered.stdout.matchAll(/^kind: (\w+)$/gm)].map((m) => m[1]);
    expect(kinds.length).toBeGreaterThan(8);
    // Custom resources of operators the cluster does not run have no schema here; checked by their operators.
    const checked = run(tools.kubeconform, ['-strict', '-summary', '-output', 'json', '-skip', 'ScaledObject,ServiceMonitor', '-schema-location', schemaLocation, '-'], rendered.stdout);
    const summary = JSON.parse(checked.stdout).summary as { valid: number; invalid: number; errors: number; skipped: number };
    expect({ status: checked.status, ...summary, resources: kinds.length }).toEqual({ status: 0, valid: kinds.length - summary.skipped, invalid: 0, errors: 0, skipped: summary.skipped, resources: kinds.length });
  });

  it('is accepted by the API server (server-side dry run of the defaults)', () => {
    const namespace = `pf-dry-${randomBytes(3).toString('hex')}`;
    // A dry run creates nothing, so the namespaces the objects go into exist already.
    execFileSync(kc, ['create', 'namespace', namespace]);
    execFileSync(kc, ['create', 'namespace', `${namespace}-sandbox`]);
    try {
      const rendered = run(tools.helm, ['template', 'pf', CHART, '--namespace', namespace, '--kube-version', KUBE_VERSION, '--set', `sandbox.namespace=${namespace}-sandbox`, '--set', 'sandbox.createNamespace=false']);
      expect(rendered.status).toBe(0);
      const applied = run(kc, ['apply', '--dry-run=server', '-f', '-'], rendered.stdout);
      expect({ status: applied.status, stderr: applied.stderr }).toEqual({ status: 0, stderr: '' });
      expect(applied.stdout).toContain('deployment.apps/pf-podflow-worker created (server dry run)');
      expect(applied.stdout).toContain('role.rbac.authorization.k8s.io/pf-podflow-worker created (server dry run)');
    } finally {
      execFileSync(kc, ['delete', 'namespace', namespace, `${namespace}-sandbox`, '--wait=false']);
    }
  });

  it.each([
    ['an unknown key', ['--set', 'coordinator.replicaz=2'], /additional properties 'replicaz' not allowed/],
    ['negative replicas', ['--set', 'worker.replicas=-1'], /'\/worker\/replicas': minimum: got -1, want 0/],
    ['files in S3 without a bucket or endpoint', ['--set', 'files.mode=s3'], /files\.mode=s3 needs files\.s3\.bucket and files\.s3\.endpoint/],
    ['KEDA on a cluster without KEDA', ['--set', 'worker.autoscaling.keda.enabled=true', '--set', 'worker.autoscaling.keda.prometheusServerAddress=http://prometheus:9090'], /this cluster has no KEDA \(keda\.sh\/v1alpha1 ScaledObject\): install KEDA first/],
    ['both autoscalers', ['--set', 'worker.autoscaling.hpa.enabled=true', '--set', 'worker.autoscaling.keda.enabled=true'], /enable keda or hpa, not both/],
    ['an embedded and an external Redis', ['--set', 'redis.external.url=redis://r:6379'], /set either redis\.embedded\.enabled=true .* or one of redis\.external/],
    ['no Redis at all', ['--set', 'redis.embedded.enabled=false'], /set exactly one of redis\.external\.url/],
    ['sandbox pods in the release namespace', ['--set', 'sandbox.namespace=podflow-system'], /sandbox\.namespace \(podflow-system\) must differ from the release namespace/],
    ['an Ingress without a host', ['--set', 'coordinator.ingress.enabled=true'], /coordinator\.ingress\.enabled=true needs coordinator\.ingress\.host/],
  ])('refuses %s with a message that says what to fix', (_what, args, message) => {
    const rendered = template(args);
    expect(rendered.status).not.toBe(0);
    expect(rendered.stderr).toMatch(message);
  });

  /** The objects `helm template` renders with `args`, by kind and name. */
  const objects = (args: string[] = []) => {
    const rendered = template(args);
    expect({ status: rendered.status, stderr: rendered.stderr }).toEqual({ status: 0, stderr: '' });
    const docs = rendered.stdout.split(/^---$/m).map((doc) => parse(doc) as { kind: string; metadata: { name: string }; [key: string]: unknown } | null);
    return (kind: string, name: string) => {
      const found = docs.find((doc) => doc?.kind === kind && doc.metadata.name === name);
      if (!found) throw new Error(`no ${kind} ${name} rendered`);
      return found as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    };
  };

  it('gives the embedded Redis a password from the chart\'s Secret, and both services that password (red-team finding: none, protected mode off)', () => {
    const find = objects();
    const redis = find('Deployment', 'pf-podflow-redis').spec.template.spec.containers[0];
    const fromSecret = { secretKeyRef: { name: 'pf-podflow-secrets', key: 'redis-password' } };
    expect(redis.args).toEqual(['--save', '', '--appendonly', 'no', '--requirepass', '$(REDIS_PASSWORD)']);
    expect(redis.env).toEqual([{ name: 'REDIS_PASSWORD', valueFrom: fromSecret }]);
    expect(Buffer.from(find('Secret', 'pf-podflow-secrets').data['redis-password'], 'base64').toString()).toMatch(/^[A-Za-z0-9]{48}$/);
    for (const service of ['coordinator', 'worker']) {
      expect(find('Deployment', `pf-podflow-${service}`).spec.template.spec.containers[0].env).toContainEqual({ name: 'REDIS_PASSWORD', valueFrom: fromSecret });
    }
    // A Secret of the operator's own (renderers without lookup would generate a new one each time).
    const own = objects(['--set', 'redis.existingSecret=my-redis']);
    const ownRef = { secretKeyRef: { name: 'my-redis', key: 'redis-password' } };
    expect(own('Deployment', 'pf-podflow-redis').spec.template.spec.containers[0].env).toEqual([{ name: 'REDIS_PASSWORD', valueFrom: ownRef }]);
    expect(own('Deployment', 'pf-podflow-worker').spec.template.spec.containers[0].env).toContainEqual({ name: 'REDIS_PASSWORD', valueFrom: ownRef });
    expect(own('Secret', 'pf-podflow-secrets').data['redis-password']).toBeUndefined();
  });

  it('lets layer builders (they can run package code) reach public HTTP(S) and cluster DNS only, plus the private ranges an operator allows (red-team finding: any address on 80/443, metadata included)', () => {
    const rules = (find: ReturnType<typeof objects>) => find('NetworkPolicy', 'layer-builder-egress').spec.egress as Array<{ to?: Array<Record<string, any>>; ports?: unknown[] }>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const closed = ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.168.0.0/16'];
    const byDefault = rules(objects());
    expect(byDefault.every((rule) => (rule.to ?? []).length > 0)).toBe(true);
    const blocks = byDefault.flatMap((rule) => (rule.to ?? []).flatMap((peer) => (peer.ipBlock ? [peer.ipBlock] : [])));
    expect(blocks).toEqual([{ cidr: '0.0.0.0/0', except: expect.arrayContaining(closed) }]);
    expect(byDefault[0]!.ports).toEqual([{ protocol: 'TCP', port: 80 }, { protocol: 'TCP', port: 443 }]);
    const mirror = rules(objects(['--set', 'sandbox.layers.egressAllowCIDRs={10.20.0.0/16,192.168.5.10/32}']));
    expect(mirror).toContainEqual({ to: [{ ipBlock: { cidr: '10.20.0.0/16' } }, { ipBlock: { cidr: '192.168.5.10/32' } }] });
    expect(template(['--set', 'sandbox.layers.egressAllowCIDRs={10.20.0.0}']).stderr).toMatch(/egressAllowCIDRs\/0.*does not match pattern/);
  });

  it('installs RBAC that lets the worker manage sandbox pods and nothing else, and the coordinator nothing', () => {
    const release = `pf${randomBytes(3).toString('hex')}`;
    const namespace = `${release}-system`;
    const sandbox = `${release}-sandbox`;
    const values = join(work, `${release}.yaml`);
    // Images that do not exist and are never pulled: this test installs objects, it runs nothing.
    writeFileSync(values, JSON.stringify({ image: { registry: 'localhost/none', pullPolicy: 'Never' }, coordinator: { replicas: 1 }, worker: { replicas: 0 }, sandbox: { namespace: sandbox }, redis: { embedded: { image: 'localhost/none/redis:0' } } }));
    const installed = run(tools.helm, ['install', release, CHART, '--namespace', namespace, '--create-namespace', '-f', values]);
    try {
      expect({ status: installed.status, stderr: installed.stderr }).toEqual({ status: 0, stderr: '' });
      // A subresource goes as --subresource: `can-i create pods/exec` would ask about a resource named "pods/exec".
      const can = (account: string, verb: string, resource: string, ns: string) => {
        const [name, subresource] = resource.split('/');
        return run(kc, ['auth', 'can-i', verb, name!, ...(subresource ? ['--subresource', subresource] : []), '--namespace', ns, '--as', `system:serviceaccount:${namespace}:${release}-podflow-${account}`]).stdout.trim();
      };
      const matrix: Array<[string, string, string, string, 'yes' | 'no']> = [
        ['worker', 'create', 'pods', sandbox, 'yes'],
        ['worker', 'patch', 'pods', sandbox, 'yes'],
        ['worker', 'delete', 'pods', sandbox, 'yes'],
        // The reaper deletes one pod at a time: a compromised worker cannot end every sandbox in one call.
        ['worker', 'deletecollection', 'pods', sandbox, 'no'],
        ['worker', 'create', 'pods/attach', sandbox, 'yes'],
        ['worker', 'get', 'pods/log', sandbox, 'yes'],
        ['worker', 'list', 'events', sandbox, 'yes'],
        ['worker', 'create', 'pods/exec', sandbox, 'no'],
        ['worker', 'create', 'pods/eviction', sandbox, 'no'],
        ['worker', 'get', 'secrets', sandbox, 'no'],
        ['worker', 'create', 'pods', namespace, 'no'],
        ['worker', 'create', 'pods', 'default', 'no'],
        ['worker', 'update', 'pods', sandbox, 'no'],
        ['worker', 'list', 'nodes', '', 'no'],
        ['worker', 'create', 'rolebindings', sandbox, 'no'],
        ['coordinator', 'create', 'pods', sandbox, 'no'],
        ['coordinator', 'get', 'secrets', namespace, 'no'],
        ['coordinator', 'list', 'pods', namespace, 'no'],
      ];
      const answers = matrix.map(([account, verb, resource, ns]) => [account, verb, resource, ns, can(account, verb, resource, ns || 'default')]);
      expect(answers).toEqual(matrix);
      // The sandbox namespace enforces the restricted profile.
      const labels = JSON.parse(execFileSync(kc, ['get', 'namespace', sandbox, '-o', 'json'], { encoding: 'utf8' })).metadata.labels;
      expect(labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
    } finally {
      run(tools.helm, ['uninstall', release, '--namespace', namespace, '--wait']);
      run(kc, ['delete', 'namespace', namespace, '--wait=false']);
    }
  });
});
