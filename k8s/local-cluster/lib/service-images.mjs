// The coordinator and worker images, built offline with the contents k8s/images/service/Dockerfile
// gives them for a registry: Node 20 on Debian bookworm, production dependencies, the built
// JavaScript of the libraries and the service, user 10001, /app. Four layers, bottom first, so a
// code change re-packs only the small top ones:
//   service-base  Debian minbase + CA roots + this machine's `node` binary (Node 20, glibc-linked;
//                 bookworm's own nodejs is 18) + the podflow user
//   service-deps  /app/package.json and the production node_modules, from `npm ci --omit=dev` of
//                 the lock file (workspace links point into the layers above)
//   service-libs  /app/libs/* as built (without sources)
//   coordinator | worker   /app/services/<name> as built (without sources)
// The two images share the first three layers.
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, appendFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { IMAGE_DIR, REPO_ROOT, SERVICE_IMAGES } from './config.mjs';
import { run, say } from './sh.mjs';

const SERVICES = ['coordinator', 'worker'];
const APP_UID = 10001;
/** What the Dockerfile leaves out of the workspace packages (.dockerignore and its `rm -rf src`). */
const EXCLUDED = new Set(['src', 'node_modules']);

/** Workspace package directories, relative to the repository: libs/* and services/*. */
function workspaces() {
  return ['libs', 'services'].flatMap((group) => readdirSync(join(REPO_ROOT, group)).map((name) => `${group}/${name}`)
    .filter((dir) => existsSync(join(REPO_ROOT, dir, 'package.json'))));
}

/** A digest of every file under `dir` except EXCLUDED entries at its top (paths and contents). */
function treeDigest(dir) {
  const hash = createHash('sha256');
  const walk = (current, top) => {
    for (const entry of readdirSync(current, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (top && EXCLUDED.has(entry.name)) continue;
      const path = join(current, entry.name);
      hash.update(`${relative(dir, path)}\0`);
      if (entry.isDirectory()) walk(path, false);
      else if (entry.isFile()) hash.update(readFileSync(path));
    }
  };
  walk(dir, true);
  return hash.digest('hex');
}

/** Copies a workspace package into the layer at /app/<dir>, without what the Dockerfile leaves out. */
function copyPackage(rootfs, dir) {
  const target = join(rootfs, 'app', dir);
  mkdirSync(target, { recursive: true });
  for (const entry of readdirSync(join(REPO_ROOT, dir))) {
    if (!EXCLUDED.has(entry)) cpSync(join(REPO_ROOT, dir, entry), join(target, entry), { recursive: true });
  }
}

/** Builds the services' JavaScript when it is missing (a fresh clone before `npm run build`). */
function ensureBuilt() {
  const missing = SERVICES.filter((name) => !existsSync(join(REPO_ROOT, 'services', name, 'dist', 'main.js')));
  if (missing.length === 0) return;
  say(`building ${missing.join(' and ')} (npm run build) for their images`);
  run('npm', ['run', 'build'], { cwd: REPO_ROOT, quiet: true });
}

/** The production dependencies of every workspace, as `npm ci --omit=dev` installs them from the lock file. */
function installProductionDependencies(rootfs) {
  const scratch = join(IMAGE_DIR, 'service-deps-install');
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  for (const file of ['package.json', 'package-lock.json']) copyFileSync(join(REPO_ROOT, file), join(scratch, file));
  for (const dir of workspaces()) {
    mkdirSync(join(scratch, dir), { recursive: true });
    copyFileSync(join(REPO_ROOT, dir, 'package.json'), join(scratch, dir, 'package.json'));
  }
  // No install scripts: this runs as root on the host, and no production dependency needs one
  // (native parts come as prebuilt optional packages).
  run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: scratch, quiet: true, env: { ...process.env, NODE_ENV: 'production' } });
  const app = join(rootfs, 'app');
  mkdirSync(app, { recursive: true });
  copyFileSync(join(scratch, 'package.json'), join(app, 'package.json'));
  renameSync(join(scratch, 'node_modules'), join(app, 'node_modules'));
  // Packages whose dependency versions clash with the root's get a node_modules of their own.
  for (const dir of workspaces()) {
    if (existsSync(join(scratch, dir, 'node_modules'))) {
      mkdirSync(join(app, dir), { recursive: true });
      renameSync(join(scratch, dir, 'node_modules'), join(app, dir, 'node_modules'));
    }
  }
  rmSync(scratch, { recursive: true, force: true });
}

/**
 * The archive recipe of the two images (see lib/images.mjs for the format). `debootstrap` and
 * `pathEnv` come from there.
 */
export function serviceRecipe({ debootstrap, pathEnv }) {
  ensureBuilt();
  const nodeBinary = process.execPath;
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  if (nodeMajor < 20) throw new Error(`the service images carry this machine's node, which is ${process.version}; podflow needs Node 20 or newer`);
  // What `npm ci --omit=dev` installs depends on the lock file, the workspaces' dependency fields
  // (not their scripts) and npm itself.
  const dependencyFields = ['package.json', ...workspaces().map((dir) => `${dir}/package.json`)].map((file) => {
    const { name, dependencies, optionalDependencies, peerDependencies, workspaces: globs, overrides } = JSON.parse(readFileSync(join(REPO_ROOT, file), 'utf8'));
    return [file, name, dependencies, optionalDependencies, peerDependencies, globs, overrides];
  });
  const npmVersion = run('npm', ['--version'], { quiet: true }).trim();
  const manifests = [dependencyFields, readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8'), process.version, npmVersion];
  const libs = workspaces().filter((dir) => dir.startsWith('libs/'));
  const layers = [
    {
      name: 'service-base',
      inputs: ['ca-certificates', process.version, statSync(nodeBinary).size, APP_UID],
      build: (rootfs) => {
        debootstrap(rootfs, ['ca-certificates']);
        copyFileSync(nodeBinary, join(rootfs, 'usr/local/bin/node'));
        appendFileSync(join(rootfs, 'etc/passwd'), `podflow:x:${APP_UID}:${APP_UID}:podflow:/app:/usr/sbin/nologin\n`);
        appendFileSync(join(rootfs, 'etc/group'), `podflow:x:${APP_UID}:\n`);
        mkdirSync(join(rootfs, 'app'), { recursive: true });
      },
    },
    { name: 'service-deps', inputs: manifests, build: installProductionDependencies },
    {
      name: 'service-libs',
      inputs: libs.map((dir) => [dir, treeDigest(join(REPO_ROOT, dir))]),
      build: (rootfs) => { for (const dir of libs) copyPackage(rootfs, dir); },
    },
    ...SERVICES.map((name) => ({
      name: `service-${name}`,
      inputs: [treeDigest(join(REPO_ROOT, 'services', name))],
      build: (rootfs) => copyPackage(rootfs, `services/${name}`),
    })),
  ];
  const images = SERVICES.map((name) => ({
    ref: SERVICE_IMAGES[name],
    layers: ['service-base', 'service-deps', 'service-libs', `service-${name}`],
    config: {
      User: `${APP_UID}:${APP_UID}`,
      WorkingDir: '/app',
      Env: [pathEnv, 'NODE_ENV=production', `PODFLOW_SERVICE=${name}`],
      Cmd: ['node', `services/${name}/dist/main.js`],
      Labels: { 'org.opencontainers.image.source': 'https://github.com/podflow/podflow', 'dev.podflow.service': name },
    },
  }));
  return { name: 'services', layers, images };
}
