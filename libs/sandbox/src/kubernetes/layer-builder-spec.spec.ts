import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BUILDER_SCRIPT,
  CLEANUP_SCRIPT,
  INSTALL_SCRIPT,
  LAYER_BUILDER_ROLE,
  PREPARE_SCRIPT,
  buildLayerBuilderPod,
  buildLayerCleanupPod,
  layerBuilderPodName,
  manifestFromLog,
  MANIFEST_BEGIN,
  MANIFEST_END,
  type LayerBuilderPlacement,
} from './layer-builder-spec';
import { buildSandboxPod, type PodPlacement } from './pod-spec';

const KEY = 'a'.repeat(64);
const placement: LayerBuilderPlacement = {
  namespace: 'podflow-sandbox',
  images: { python: 'podflow/runtime-python:1', node: 'podflow/runtime-node:1' },
  imagePullPolicy: 'IfNotPresent',
  volumeClaim: 'podflow-layers',
  caConfigMap: 'podflow-layer-ca',
  env: { PIP_INDEX_URL: 'https://mirror.example/simple' },
  cpuMillis: 1000,
  memoryBytes: 1024 ** 3,
  tmpSizeLimit: '2Gi',
};
const manifest = { key: KEY, runtimeId: 'image:podflow/runtime-python:1', ecosystem: 'pypi' as const, specs: ['tabulate==0.9.0'], createdAt: '2026-11-21T00:00:00.000Z', builtBy: 'w' };

describe('buildLayerBuilderPod', () => {
  const staging = `/layers/.building/${KEY}-1`;
  const pod = buildLayerBuilderPod({ key: KEY, language: 'python', installer: ['python3', '-m', 'pip', 'install', 'tabulate==0.9.0'], staging, manifest, workerId: 'worker 1', activeDeadlineSeconds: 300 }, placement);
  const [prepare, install] = pod.spec!.initContainers!;
  const publish = pod.spec!.containers[0]!;
  const envOf = (container: typeof publish) => Object.fromEntries(container.env!.map((e) => [e.name, e.value]));

  it('is one pod per layer, labelled as a builder, with the runtime image of its language', () => {
    expect(pod.metadata!.name).toBe(layerBuilderPodName(KEY));
    expect(pod.metadata!.name).toBe(`podflow-layer-${'a'.repeat(40)}`);
    expect(pod.metadata!.labels).toMatchObject({ 'podflow.dev/role': LAYER_BUILDER_ROLE, 'podflow.dev/layer': KEY.slice(0, 63) });
    expect([prepare, install, publish].map((c) => [c!.name, c!.image])).toEqual([
      ['prepare', 'podflow/runtime-python:1'],
      ['install', 'podflow/runtime-python:1'],
      ['builder', 'podflow/runtime-python:1'],
    ]);
    expect(pod.spec!.activeDeadlineSeconds).toBe(300);
  });

  it('passes the restricted Pod Security profile like sandbox pods', () => {
    expect(pod.spec!.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } });
    for (const container of [prepare, install, publish]) {
      expect(container!.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    }
    expect(pod.spec!.automountServiceAccountToken).toBe(false);
  });

  it('runs the installer (package code) with nothing of the layer volume, into RAM-backed volumes of set sizes; only the publisher writes the volume (red-team and review findings)', () => {
    const mounts = (container: typeof publish) => container.volumeMounts!.filter((m) => m.name !== 'ca');
    expect(mounts(install!)).toEqual([
      { name: 'staging', mountPath: staging },
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'flags', mountPath: '/podflow-flags', readOnly: true },
    ]);
    expect(mounts(prepare!)).toEqual([{ name: 'layers', mountPath: '/layers', readOnly: true }, { name: 'flags', mountPath: '/podflow-flags' }]);
    expect(mounts(publish)).toEqual([{ name: 'layers', mountPath: '/layers' }, { name: 'staging', mountPath: '/podflow-staging', readOnly: true }]);
    expect(pod.spec!.volumes).toEqual(
      expect.arrayContaining([
        { name: 'staging', emptyDir: { medium: 'Memory', sizeLimit: '1Gi' } },
        { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '2Gi' } },
      ]),
    );
    expect(install!.command).toEqual(['sh', '-c', INSTALL_SCRIPT, 'podflow-layer-install', 'python3', '-m', 'pip', 'install', 'tabulate==0.9.0']);
    expect(prepare!.command).toEqual(['sh', '-c', PREPARE_SCRIPT, 'podflow-layer-prepare', KEY]);
    expect(publish.command).toEqual(['sh', '-c', BUILDER_SCRIPT, 'podflow-layer-publish', KEY, staging]);
  });

  it('gives the installer the CA bundle read-only and its environment; the other containers get neither', () => {
    expect(pod.spec!.volumes).toEqual(expect.arrayContaining([{ name: 'layers', persistentVolumeClaim: { claimName: 'podflow-layers' } }, { name: 'ca', configMap: { name: 'podflow-layer-ca' } }]));
    expect(install!.volumeMounts).toContainEqual({ name: 'ca', mountPath: '/etc/podflow/ca', readOnly: true });
    expect(envOf(install!)).toMatchObject({ PIP_CERT: '/etc/podflow/ca/ca.crt', NODE_EXTRA_CA_CERTS: '/etc/podflow/ca/ca.crt', PIP_INDEX_URL: 'https://mirror.example/simple' });
    expect(envOf(prepare!)).toEqual({});
    expect(envOf(publish)).toEqual({ LANG: 'C.UTF-8', PODFLOW_LAYER_MANIFEST: JSON.stringify({ ...manifest, sizeBytes: 0 }) });
  });

  it('refuses a staging directory that is not one directory under /layers/.building', () => {
    const build = (where: string) => buildLayerBuilderPod({ key: KEY, language: 'python', installer: ['true'], staging: where, manifest, workerId: 'w', activeDeadlineSeconds: 1 }, placement);
    for (const where of ['/layers/other', '/layers/.building/a/b', '/layers/.building/..', '/tmp/x']) expect(() => build(where)).toThrow(/is not one directory under \/layers\/\.building\//);
  });
});

describe('sandbox pods with a layer', () => {
  const podPlacement: PodPlacement = { namespace: 'ns', images: placement.images, imagePullPolicy: 'IfNotPresent', homeSizeLimit: '1Gi', tmpSizeLimit: '64Mi', layerVolumeClaim: 'podflow-layers' };
  const input = { executionId: 'r.n.1', tenantId: 't', runId: 'r', nodeId: 'n', attempt: 1, workerId: 'w', language: 'typescript' as const, resources: { cpuMillis: 500, memoryBytes: 256 * 1024 ** 2, notes: [] }, requestRatio: 0.25, activeDeadlineSeconds: 100, deadlineAt: 0 };

  it('mount only their layer directory, read-only, and make it importable', () => {
    const pod = buildSandboxPod({ ...input, layer: { key: KEY, ecosystem: 'npm' } }, podPlacement);
    const container = pod.spec!.containers[0];
    expect(pod.spec!.volumes).toContainEqual({ name: 'layer', persistentVolumeClaim: { claimName: 'podflow-layers', readOnly: true } });
    expect(container.volumeMounts).toContainEqual({ name: 'layer', mountPath: '/opt/podflow/layer', subPath: KEY, readOnly: true });
    expect(container.env).toContainEqual({ name: 'NODE_PATH', value: '/opt/podflow/layer/node_modules' });
  });

  it('without dependencies mount nothing', () => {
    const pod = buildSandboxPod(input, podPlacement);
    expect(pod.spec!.volumes!.map((v) => v.name)).toEqual(['home', 'tmp']);
    expect(pod.spec!.containers[0].env!.map((e) => e.name)).not.toContain('NODE_PATH');
  });
});

describe('manifestFromLog', () => {
  it('reads the last manifest between the markers', () => {
    expect(manifestFromLog(`pip output\n${MANIFEST_BEGIN}\n{"a":1}\n\n${MANIFEST_END}\n`)).toBe('{"a":1}');
    expect(manifestFromLog('no manifest')).toBeUndefined();
    expect(manifestFromLog(`${MANIFEST_BEGIN}\n{"a":1`)).toBeUndefined();
  });
});

// The builder's three programs, run for real in sequence, each with the mounts its container has:
// prepare sees /layers (a scratch directory) read-only; install sees only its own directory (the
// RAM-backed one) over a root it cannot write, as the pod's read-only root filesystem; the
// publisher sees /layers read-write and what install wrote, read-only.
describe('the builder scripts (prepare, install, publish)', () => {
  const hasBwrap = spawnSync('bwrap', ['--ro-bind', '/', '/', 'true']).status === 0;
  let volume: string;
  let flags: string;
  let scratch: string;
  beforeEach(() => {
    volume = mkdtempSync(join(tmpdir(), 'podflow-layer-volume-'));
    flags = mkdtempSync(join(tmpdir(), 'podflow-layer-flags-'));
    scratch = mkdtempSync(join(tmpdir(), 'podflow-layer-scratch-'));
  });
  afterEach(() => {
    for (const dir of [volume, flags, scratch]) rmSync(dir, { recursive: true, force: true });
  });

  const STAGING = `/layers/.building/${KEY}-x`;
  /**
   * The host's root, read-only, as bwrap's new root: each top-level entry bound (links as links)
   * onto the sandbox's own root rather than \`--ro-bind / /\`, so that bwrap can make the mount
   * points the containers have (/layers, /podflow-flags, /podflow-staging) without the host having
   * them (a fresh machine does not).
   */
  const hostRoot = (): string[] =>
    readdirSync('/')
      .filter((name) => !['dev', 'proc', 'sys'].includes(name))
      .flatMap((name) => {
        const path = `/${name}`;
        return lstatSync(path).isSymbolicLink() ? ['--symlink', readlinkSync(path), path] : ['--ro-bind', path, path];
      });
  const sh = (bwrap: string[], script: string, args: string[], env: Record<string, string> = {}) => {
    const result = spawnSync('bwrap', [...bwrap, 'sh', '-c', script, 'step', ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
    return { code: result.status, output: `${result.stdout}${result.stderr}` };
  };
  function builder(installer: string[]) {
    if (!hasBwrap) throw new Error('bubblewrap is required for this test (npm test installs it)');
    const prepared = sh([...hostRoot(), '--dev', '/dev', '--ro-bind', volume, '/layers', '--bind', flags, '/podflow-flags'], PREPARE_SCRIPT, [KEY]);
    if (prepared.code !== 0) return prepared;
    const own = [...hostRoot(), '--dev', '/dev', '--tmpfs', '/tmp', '--tmpfs', '/layers', '--bind', scratch, STAGING, '--ro-bind', flags, '/podflow-flags'];
    const installed = sh(own, INSTALL_SCRIPT, installer);
    if (installed.code !== 0) return { code: installed.code, output: prepared.output + installed.output };
    const publisher = [...hostRoot(), '--dev', '/dev', '--tmpfs', '/tmp', '--bind', volume, '/layers', '--ro-bind', scratch, '/podflow-staging'];
    const published = sh(publisher, BUILDER_SCRIPT, [KEY, STAGING], { PODFLOW_LAYER_MANIFEST: JSON.stringify({ ...manifest, sizeBytes: 0 }) });
    return { code: published.code, output: prepared.output + installed.output + published.output };
  }
  const install = ['sh', '-c', 'mkdir -p "$0/python/pkg" && printf "x = 1\\n" > "$0/python/pkg/__init__.py"', STAGING];

  it('installs into staging, writes the manifest with the real size, publishes by rename and prints it', () => {
    const first = builder(install);
    expect(first.code).toBe(0);
    const printed = JSON.parse(manifestFromLog(first.output)!);
    expect(printed).toMatchObject({ key: KEY, specs: ['tabulate==0.9.0'] });
    expect(printed.sizeBytes).toBeGreaterThan(0);
    expect(readFileSync(join(volume, KEY, 'python/pkg/__init__.py'), 'utf8')).toBe('x = 1\n');
    expect(JSON.parse(readFileSync(join(volume, KEY, '.podflow-layer.json'), 'utf8'))).toEqual(printed);
    expect(readdirSync(join(volume, '.building'))).toEqual([]);
  });

  it('reuses a published layer without running the installer', () => {
    expect(builder(install).code).toBe(0);
    const again = builder(['sh', '-c', 'echo INSTALLER RAN; exit 9']);
    expect(again.code).toBe(0);
    expect(again.output).not.toContain('INSTALLER RAN');
    expect(again.output).toContain('already published');
    expect(readdirSync(join(volume, '.building'))).toEqual([]);
  });

  it('a failing installer publishes nothing and passes its exit code on', () => {
    const failed = builder(['sh', '-c', 'mkdir -p "$0/python/half"; echo "ERROR: No matching distribution" >&2; exit 3', STAGING]);
    expect(failed.code).toBe(3);
    expect(failed.output).toContain('ERROR: No matching distribution');
    expect(existsSync(join(volume, KEY))).toBe(false);
  });

  it('package code in the installer can neither change another layer nor plant one, nor redirect the manifest onto one (red-team finding)', () => {
    const other = 'b'.repeat(64);
    mkdirSync(join(volume, other, 'python', 'requests'), { recursive: true });
    writeFileSync(join(volume, other, 'python', 'requests', '__init__.py'), 'genuine\n');
    writeFileSync(join(volume, other, '.podflow-layer.json'), '{}');
    const planted = 'c'.repeat(64);
    const hostile = [
      `echo pwned > /layers/${other}/python/requests/__init__.py`,
      `mkdir -p /layers/${planted}/python && echo '{}' > /layers/${planted}/.podflow-layer.json`,
      `ln -s /layers/${other}/python/requests/__init__.py "$0/.podflow-layer.json"`,
      'mkdir -p "$0/python" && echo ok > "$0/python/mod.py"',
    ].join('; ');
    const built = builder(['sh', '-c', hostile, STAGING]);
    expect(built.code).toBe(0);
    expect(readFileSync(join(volume, other, 'python', 'requests', '__init__.py'), 'utf8')).toBe('genuine\n');
    expect(existsSync(join(volume, planted))).toBe(false);
    // The publisher wrote a manifest of its own in place of the link.
    expect(JSON.parse(readFileSync(join(volume, KEY, '.podflow-layer.json'), 'utf8'))).toMatchObject({ key: KEY });
  });

  it('copies what the install wrote as it is: links stay links (never followed), hard links stay one file, holes stay holes (the copy is no larger than the bounded original)', () => {
    const hostile = [
      'mkdir -p "$0/python"',
      'ln -s /etc/passwd "$0/python/passwd"',
      'head -c 1048576 /dev/zero > "$0/python/big" && for i in 1 2 3 4 5 6 7 8; do ln "$0/python/big" "$0/python/big$i"; done',
      'truncate -s 50G "$0/python/sparse"',
    ].join(' && ');
    const built = builder(['sh', '-c', hostile, STAGING]);
    expect(built.code).toBe(0);
    const layer = join(volume, KEY, 'python');
    expect(lstatSync(join(layer, 'passwd')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(layer, 'passwd'))).toBe('/etc/passwd');
    expect(statSync(join(layer, 'big')).nlink).toBe(9);
    expect(statSync(join(layer, 'sparse')).size).toBe(50 * 1024 ** 3);
    expect(statSync(join(layer, 'sparse')).blocks).toBeLessThan(1024);
  });

  it('the cleanup script removes evicted layers and nothing else', () => {
    expect(builder(install).code).toBe(0);
    const other = 'b'.repeat(64);
    mkdirSync(join(volume, other, 'python'), { recursive: true });
    writeFileSync(join(volume, other, '.podflow-layer.json'), '{}');
    const cleanup = spawnSync('bwrap', [...hostRoot(), '--dev', '/dev', '--tmpfs', '/tmp', '--bind', volume, '/layers', 'sh', '-c', CLEANUP_SCRIPT, 'cleanup', KEY], { encoding: 'utf8' });
    expect(cleanup.status).toBe(0);
    expect(existsSync(join(volume, KEY))).toBe(false);
    expect(existsSync(join(volume, other, '.podflow-layer.json'))).toBe(true);
    expect(readdirSync(join(volume, '.trash'))).toEqual([]);
  });
});

describe('buildLayerCleanupPod', () => {
  it('is a builder-role pod on the layer volume, without the installer CA or environment', () => {
    const pod = buildLayerCleanupPod({ name: 'podflow-layer-gc-1', keys: [KEY], workerId: 'w' }, placement);
    expect(pod.metadata!.labels).toMatchObject({ 'podflow.dev/role': LAYER_BUILDER_ROLE, 'podflow.dev/layer': 'cleanup' });
    expect(pod.spec!.containers[0]!.command).toEqual(['sh', '-c', CLEANUP_SCRIPT, 'podflow-layer-cleanup', KEY]);
    expect(pod.spec!.containers[0]!.env).toEqual([]);
    expect(pod.spec!.volumes!.map((v) => v.name)).toEqual(['layers', 'tmp']);
  });
});
