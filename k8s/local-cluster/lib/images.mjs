// Builds the cluster's images without a registry or Docker: the pause image from Kubernetes' own
// pause.c, and podflow's runtime images from Debian packages with debootstrap, each carrying the
// runner from libs/runner. k8s/images/*/Dockerfile describe the same images for users with a
// registry (debian:bookworm-slim + the same packages + the same runner files at the same paths).
// Archives are cached under ~/.cache/podflow/k8s/images, keyed by the recipe and the runner files.
import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEBIAN_MIRROR, DEBIAN_SUITE, IMAGE_DIR, IMAGE_RECIPE_VERSION, KUBERNETES_VERSION, PAUSE_IMAGE, REPO_ROOT, RUNTIME_IMAGES } from './config.mjs';
import { writeOciArchive } from './oci.mjs';
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

/** The images, each with its build recipe. `inputs` feed the cache key. */
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
    {
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
    },
    {
      name: 'runtime-python',
      ref: qualified(RUNTIME_IMAGES.python),
      // pip (and the CA roots it needs) is what layer builder pods install with (k8s/images/README.md).
      inputs: ['python3,python3-pip,ca-certificates', readFileSync(runner.python, 'utf8')],
      build: (rootfs) => {
        debootstrap(rootfs, ['python3', 'python3-pip', 'ca-certificates']);
        installRunner(rootfs, runner.python, 'podflow_runner.py');
      },
      config: runtimeConfig(['python3', '-I', '-u', `${RUNNER_DIR}/podflow_runner.py`]),
    },
    {
      name: 'runtime-node',
      ref: qualified(RUNTIME_IMAGES.node),
      inputs: ['nodejs,ca-certificates', `npm@${IMAGE_NPM_VERSION}`, readFileSync(runner.node, 'utf8')],
      build: (rootfs) => {
        debootstrap(rootfs, ['nodejs', 'ca-certificates']);
        installNpm(rootfs);
        installRunner(rootfs, runner.node, 'node-runner.js');
      },
      config: runtimeConfig(['node', `${RUNNER_DIR}/node-runner.js`]),
    },
  ];
}

/** Where Go keeps the pinned k8s.io/kubernetes module (downloaded when the cache lacks it). */
function kubernetesModuleDir() {
  const info = JSON.parse(run('go', ['mod', 'download', '-json', `k8s.io/kubernetes@${KUBERNETES_VERSION}`], { quiet: true, cwd: IMAGE_DIR, env: { ...process.env, GOFLAGS: '-mod=mod' } }));
  if (!info.Dir) throw new Error(`go mod download did not report a directory for k8s.io/kubernetes@${KUBERNETES_VERSION}: ${info.Error ?? 'no error given'}`);
  return info.Dir;
}

/** A minimal Debian (the minbase variant) plus `packages`, trimmed of docs, caches and apt lists. */
function debootstrap(rootfs, packages) {
  const debs = join(IMAGE_DIR, 'debs');
  mkdirSync(debs, { recursive: true });
  run('debootstrap', ['--variant=minbase', `--include=${packages.join(',')}`, `--cache-dir=${debs}`, DEBIAN_SUITE, rootfs, DEBIAN_MIRROR], { quiet: true });
  for (const dir of ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale', 'var/cache/apt', 'var/lib/apt/lists', 'var/log', 'dev', 'run', 'tmp']) {
    rmSync(join(rootfs, dir), { recursive: true, force: true });
    mkdirSync(join(rootfs, dir), { recursive: true });
  }
  chmodSync(join(rootfs, 'tmp'), 0o1777);
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

function cacheKey(recipe) {
  const hash = createHash('sha256').update(JSON.stringify([IMAGE_RECIPE_VERSION, DEBIAN_SUITE, recipe.ref, recipe.config, ...recipe.inputs]));
  return hash.digest('hex').slice(0, 16);
}

/**
 * Builds every image archive that is not cached yet. Returns, per image, its reference, archive,
 * manifest digest and sizes. A build happens in a scratch directory and is published by rename,
 * so an interrupted build never leaves an archive that a later run would trust.
 */
export async function ensureImageArchives() {
  mkdirSync(IMAGE_DIR, { recursive: true });
  const images = [];
  for (const recipe of recipes()) {
    const key = cacheKey(recipe);
    const archive = join(IMAGE_DIR, `${recipe.name}-${key}.tar`);
    const metaFile = `${archive}.json`;
    if (!existsSync(archive) || !existsSync(metaFile)) {
      const started = Date.now();
      say(`building image ${recipe.ref} (${recipe.name}-${key})`);
      for (const stale of readdirSync(IMAGE_DIR).filter((file) => file.startsWith(`${recipe.name}-`))) {
        rmSync(join(IMAGE_DIR, stale), { recursive: true, force: true });
      }
      const rootfs = join(IMAGE_DIR, `${recipe.name}-${key}.rootfs`);
      rmSync(rootfs, { recursive: true, force: true });
      mkdirSync(rootfs, { recursive: true });
      recipe.build(rootfs);
      const written = await writeOciArchive({ rootfs, archive, name: recipe.ref, config: recipe.config });
      rmSync(rootfs, { recursive: true, force: true });
      writeFileSync(metaFile, JSON.stringify({ ref: recipe.ref, ...written, buildSeconds: (Date.now() - started) / 1000 }, null, 2));
    }
    images.push({ name: recipe.name, archive, ...JSON.parse(readFileSync(metaFile, 'utf8')) });
  }
  return images;
}
