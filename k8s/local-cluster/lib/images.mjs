// Builds the cluster's images without a registry or Docker:
// - the pause image, from Kubernetes' own pause.c;
// - podflow's runtime images, from Debian packages with debootstrap, each carrying the runner from
//   libs/runner (k8s/images/runtime-*/Dockerfile: debian:bookworm-slim + the same packages + the
//   same runner files at the same paths);
// - the coordinator and worker images (lib/service-images.mjs), from Debian, this machine's Node 20
//   and the repository's build output (k8s/images/service/Dockerfile for a registry);
// - a Redis image from Debian's redis-server, for the chart's in-chart Redis.
// Layers and archives are cached under ~/.cache/podflow/k8s/images, keyed by their inputs.
import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEBIAN_MIRROR, DEBIAN_SUITE, IMAGE_DIR, IMAGE_RECIPE_VERSION, KUBERNETES_VERSION, PAUSE_IMAGE, REDIS_IMAGE, REPO_ROOT, RUNTIME_IMAGES } from './config.mjs';
import { packLayer, writeOciArchive } from './oci.mjs';
import { serviceRecipe } from './service-images.mjs';
import { run, say } from './sh.mjs';

const RUNNER_DIR = '/opt/podflow/runner';
/** npm in the runtime-node image; 10.x still supports Debian bookworm's Node 18. */
const IMAGE_NPM_VERSION = '10.9.9';
const SANDBOX_UID = 1000;
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Fully qualified reference, as containerd records it. */
export const qualified = (ref) => (ref.split('/')[0].includes('.') ? ref : `docker.io/${ref}`);

function runnerFiles() {
  const python = join(REPO_ROOT, 'libs/runner/python/podflow_runner.py');
  const node = join(REPO_ROOT, 'libs/runner/dist/node-runner.js');
  if (!existsSync(node)) run('node', [join(REPO_ROOT, 'libs/runner/scripts/bundle.mjs')], { quiet: true });
  return { python, node };
}

/**
 * An archive of one image with one layer: `build(rootfs)` fills the layer, `inputs` feed its cache
 * key.
 */
function singleLayer({ name, ref, inputs, build, config }) {
  return { name, layers: [{ name, inputs, build }], images: [{ ref, config, layers: [name] }] };
}

/**
 * The archives, each with its layers and images. A layer is `{ name, inputs, build(rootfs) }`; an
 * image names its layers bottom first.
 */
function recipes() {
  const runner = runnerFiles();
  const runtimeConfig = (cmd) => ({
    User: `${SANDBOX_UID}:${SANDBOX_UID}`,
    WorkingDir: '/home/user',
    Env: [PATH_ENV, 'HOME=/home/user', 'PYTHONDONTWRITEBYTECODE=1', 'PYTHONUNBUFFERED=1'],
    Cmd: cmd,
    Labels: { 'org.opencontainers.image.source': 'https://github.com/podflow/podflow', 'dev.podflow.runner-dir': RUNNER_DIR },
  });
  return [
    singleLayer({
      name: 'pause',
      ref: qualified(PAUSE_IMAGE),
      // pause.c is pinned by the Kubernetes version, so the version is the cache key.
      inputs: [KUBERNETES_VERSION],
      build: (rootfs) => {
        const pauseSource = join(kubernetesModuleDir(), 'build/pause/linux/pause.c');
        run('gcc', ['-Os', '-static', '-DVERSION=podflow-local', '-o', join(rootfs, 'pause'), pauseSource], { quiet: true });
        run('strip', [join(rootfs, 'pause')], { quiet: true });
      },
      config: { User: '65535:65535', Entrypoint: ['/pause'] },
    }),
    singleLayer({
      name: 'runtime-python',
      ref: qualified(RUNTIME_IMAGES.python),
      // pip (and the CA roots it needs) is what layer builder pods install with (k8s/images/README.md).
      inputs: ['python3,python3-pip,ca-certificates', readFileSync(runner.python, 'utf8')],
      build: (rootfs) => {
        debootstrap(rootfs, ['python3', 'python3-pip', 'ca-certificates']);
        addSandboxUser(rootfs);
        installRunner(rootfs, runner.python, 'podflow_runner.py');
      },
      config: runtimeConfig(['python3', '-I', '-u', `${RUNNER_DIR}/podflow_runner.py`]),
    }),
    singleLayer({
      name: 'runtime-node',
      ref: qualified(RUNTIME_IMAGES.node),
      inputs: ['nodejs,ca-certificates', `npm@${IMAGE_NPM_VERSION}`, readFileSync(runner.node, 'utf8')],
      build: (rootfs) => {
        debootstrap(rootfs, ['nodejs', 'ca-certificates']);
        addSandboxUser(rootfs);
        installNpm(rootfs);
        installRunner(rootfs, runner.node, 'node-runner.js');
      },
      config: runtimeConfig(['node', `${RUNNER_DIR}/node-runner.js`]),
    }),
    singleLayer({
      name: 'redis',
      ref: qualified(REDIS_IMAGE),
      inputs: ['redis-server'],
      build: (rootfs) => {
        debootstrap(rootfs, ['redis-server']);
        mkdirSync(join(rootfs, 'data'), { recursive: true });
      },
      // The chart passes only arguments (as to the official image's redis-server command).
      config: { User: '999:999', WorkingDir: '/data', Entrypoint: ['redis-server'], Env: [PATH_ENV] },
    }),
    serviceRecipe({ debootstrap, pathEnv: PATH_ENV }),
  ];
}

/** Where Go keeps the pinned k8s.io/kubernetes module (downloaded when the cache lacks it). */
function kubernetesModuleDir() {
  const info = JSON.parse(run('go', ['mod', 'download', '-json', `k8s.io/kubernetes@${KUBERNETES_VERSION}`], { quiet: true, cwd: IMAGE_DIR, env: { ...process.env, GOFLAGS: '-mod=mod' } }));
  if (!info.Dir) throw new Error(`go mod download did not report a directory for k8s.io/kubernetes@${KUBERNETES_VERSION}: ${info.Error ?? 'no error given'}`);
  return info.Dir;
}

/** A minimal Debian (the minbase variant) plus `packages`, trimmed of docs, caches and apt lists. */
export function debootstrap(rootfs, packages) {
  const debs = join(IMAGE_DIR, 'debs');
  mkdirSync(debs, { recursive: true });
  run('debootstrap', ['--variant=minbase', `--include=${packages.join(',')}`, `--cache-dir=${debs}`, DEBIAN_SUITE, rootfs, DEBIAN_MIRROR], { quiet: true });
  for (const dir of ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale', 'var/cache/apt', 'var/lib/apt/lists', 'var/log', 'dev', 'run', 'tmp']) {
    rmSync(join(rootfs, dir), { recursive: true, force: true });
    mkdirSync(join(rootfs, dir), { recursive: true });
  }
  chmodSync(join(rootfs, 'tmp'), 0o1777);
}

function addSandboxUser(rootfs) {
  // The unprivileged user sandboxes run as (pods set runAsUser too; this names it inside the image).
  appendFileSync(join(rootfs, 'etc/passwd'), `user:x:${SANDBOX_UID}:${SANDBOX_UID}:podflow sandbox:/home/user:/usr/sbin/nologin\n`);
  appendFileSync(join(rootfs, 'etc/group'), `user:x:${SANDBOX_UID}:\n`);
  mkdirSync(join(rootfs, 'home/user'), { recursive: true });
  chownSync(join(rootfs, 'home/user'), SANDBOX_UID, SANDBOX_UID);
}

/**
 * npm for layer builder pods, unpacked from the registry's own package into /opt/podflow/npm
 * (Debian's npm package drags in hundreds of node-* packages; this is one self-contained tree).
 */
function installNpm(rootfs) {
  const scratch = join(IMAGE_DIR, 'npm-pack');
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const packed = run('npm', ['pack', `npm@${IMAGE_NPM_VERSION}`, '--pack-destination', scratch, '--silent'], { quiet: true, cwd: scratch }).trim().split('\n').pop();
  const target = join(rootfs, 'opt/podflow/npm');
  mkdirSync(target, { recursive: true });
  run('tar', ['-xzf', join(scratch, packed), '-C', target, '--strip-components=1', '--no-same-owner'], { quiet: true });
  rmSync(scratch, { recursive: true, force: true });
}

function installRunner(rootfs, source, fileName) {
  const dir = join(rootfs, RUNNER_DIR.slice(1));
  mkdirSync(dir, { recursive: true });
  copyFileSync(source, join(dir, fileName));
  chmodSync(join(dir, fileName), 0o644);
}

/** Writes JSON by rename, so a killed build never leaves a half-written file a later run trusts. */
function writeJsonAtomically(file, value) {
  writeFileSync(`${file}.partial`, JSON.stringify(value, null, 2));
  renameSync(`${file}.partial`, file);
}

/** A cached JSON file, or undefined when it is missing or unreadable (then rebuilt). */
function readCachedJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

const digestOf = (value) => createHash('sha256').update(JSON.stringify([IMAGE_RECIPE_VERSION, DEBIAN_SUITE, value])).digest('hex').slice(0, 16);

/** Removes cached files of `prefix` other than `keep` (an older key's archive or layer). */
function removeStale(dir, prefix, keep) {
  for (const file of readdirSync(dir).filter((entry) => entry.startsWith(prefix) && !entry.startsWith(keep))) {
    rmSync(join(dir, file), { recursive: true, force: true });
  }
}

/**
 * The packed layer for `layer`, built unless cached. A build happens in a scratch directory and is
 * published by rename, so an interrupted build never leaves a layer a later run would trust.
 */
async function ensureLayer(layer) {
  const dir = join(IMAGE_DIR, 'layers');
  mkdirSync(dir, { recursive: true });
  const id = `${layer.name}-${digestOf(layer.inputs)}`;
  const file = join(dir, `${id}.tar.gz`);
  const metaFile = `${file}.json`;
  const cached = existsSync(file) ? readCachedJson(metaFile) : undefined;
  if (cached) return cached;
  const started = Date.now();
  say(`building layer ${id}`);
  removeStale(dir, `${layer.name}-`, id);
  const rootfs = join(dir, `${id}.rootfs`);
  rmSync(rootfs, { recursive: true, force: true });
  mkdirSync(rootfs, { recursive: true });
  await layer.build(rootfs);
  const packed = await packLayer(rootfs, `${file}.partial`);
  rmSync(rootfs, { recursive: true, force: true });
  renameSync(packed.file, file);
  const meta = { ...packed, file, buildSeconds: (Date.now() - started) / 1000 };
  writeJsonAtomically(metaFile, meta);
  return meta;
}

/**
 * Builds every layer and archive that is not cached yet and returns, per image, its reference,
 * archive, manifest digest and sizes. An archive is cached by the digests of its layers and the
 * images' configs, so an unchanged image is never re-packed or re-imported.
 */
export async function ensureImageArchives() {
  mkdirSync(IMAGE_DIR, { recursive: true });
  const images = [];
  for (const recipe of recipes()) {
    const layers = new Map();
    for (const layer of recipe.layers) layers.set(layer.name, await ensureLayer(layer));
    const key = digestOf([recipe.images, [...layers.values()].map((layer) => layer.digest)]);
    const archive = join(IMAGE_DIR, `${recipe.name}-${key}.tar`);
    const metaFile = `${archive}.json`;
    if (!existsSync(archive) || !readCachedJson(metaFile)) {
      removeStale(IMAGE_DIR, `${recipe.name}-`, `${recipe.name}-${key}`);
      const digests = await writeOciArchive({
        archive,
        images: recipe.images.map(({ ref, config, layers: names }) => ({ name: ref, config, layers: names.map((name) => layers.get(name)) })),
      });
      writeJsonAtomically(metaFile, recipe.images.map(({ ref, layers: names }) => ({
        ref,
        manifestDigest: digests[ref],
        compressedSize: names.reduce((sum, name) => sum + layers.get(name).size, 0),
        unpackedSize: names.reduce((sum, name) => sum + layers.get(name).unpackedSize, 0),
      })));
    }
    for (const image of readCachedJson(metaFile)) images.push({ name: recipe.name, archive, ...image });
  }
  return images;
}
