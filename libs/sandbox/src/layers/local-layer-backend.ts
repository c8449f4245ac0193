import { PodflowError, type Language } from '@podflow/protocol';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, lchown, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SandboxLogger } from '../driver';
import { chooseEvictions, type LayerUsage } from './eviction';
import {
  describeDuration,
  installerArgv,
  installerEnv,
  installerOutputTail,
  installFailureMessage,
  type InstallerCommands,
  type InstallerEnding,
  type InstallerOptions,
  type InstallerRun,
  type InstallerRunner,
} from './installer';
import { LAYER_MANIFEST_FILE, layerImportDir, parseLayerManifest, type LayerManifest, type LayerSpec } from './layer';
import type { LayerBackend } from './layer-resolver';

export interface LocalLayerBackendOptions {
  /** Told how many layers each eviction round removed (the worker's metrics). */
  onEvicted?: (count: number) => void;
  /** The cache directory: `<root>/<key>/` are published layers. Must be traversable by sandbox uids. */
  root: string;
  /** Interpreters the sandboxes run (their versions go into the layer key). */
  interpreters: { python: string; node: string };
  commands: InstallerCommands;
  installer: InstallerOptions;
  /** Size cap of the whole cache; least recently used layers are evicted past it. */
  maxBytes: number;
  /** A layer used more recently than this is never evicted. */
  minIdleMs: number;
  /** The worker's environment, filtered by `installerEnv`. */
  hostEnv: NodeJS.ProcessEnv;
  /**
   * Runs the installer. Default: a plain child process of the worker (only for `none` isolation,
   * which runs user code unconfined anyway); the process driver's `installerRunner()` confines it.
   */
  runInstaller?: InstallerRunner;
  builtBy: string;
  logger?: SandboxLogger;
}

const KEY_PATTERN = /^[0-9a-f]{64}$/;
/** Installer output kept in memory per build (the tail is what errors show). */
const OUTPUT_CAP_BYTES = 256 * 1024;

/**
 * Dependency layers of the process driver, in a local cache directory:
 *
 *     <root>/<key>/                 published layers (python/ or node_modules/, then the manifest)
 *     <root>/.building/<key>-XXXX/  builds in progress; renamed to <root>/<key> when complete
 *     <root>/.used/<key>            its mtime is the layer's last use (LRU)
 *     <root>/.trash/                evicted layers on their way out
 *     <root>/.installer-home/       pip's and npm's download caches (unconfined installs only;
 *                                   confined ones get a fresh HOME each, so no build can poison another's cache)
 *
 * A build is published by one rename(2) of a complete directory, so a killed build leaves only a
 * `.building` directory that nothing trusts (swept once it is older than two install timeouts).
 */
export class LocalLayerBackend implements LayerBackend {
  readonly name = 'local';
  private readonly runtimeIds = new Map<'python' | 'node', Promise<string>>();

  constructor(private readonly options: LocalLayerBackendOptions) {}

  runtimeId(language: Language): Promise<string> {
    const kind = language === 'python' ? 'python' : 'node';
    let id = this.runtimeIds.get(kind);
    if (!id) {
      id = probeRuntime(kind, this.options.interpreters[kind]);
      id.catch(() => this.runtimeIds.delete(kind));
      this.runtimeIds.set(kind, id);
    }
    return id;
  }

  hostPathOf(key: string): string {
    return join(this.options.root, key);
  }

  async lookup(key: string): Promise<LayerManifest | undefined> {
    const text = await readFile(join(this.hostPathOf(key), LAYER_MANIFEST_FILE), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : parseLayerManifest(text, key);
  }

  async markUsed(key: string): Promise<void> {
    const marker = join(this.options.root, '.used', key);
    const now = new Date();
    await utimes(marker, now, now).catch(async () => {
      await mkdir(join(this.options.root, '.used'), { recursive: true });
      await writeFile(marker, '');
    });
  }

  async build(spec: LayerSpec, timeoutMs: number): Promise<LayerManifest> {
    const { root } = this.options;
    await mkdir(root, { recursive: true, mode: 0o755 });
    await chmod(root, 0o755);
    await this.sweepStaleBuilds(timeoutMs);
    const building = join(root, '.building');
    // Traversable, not listable: a confined installer (a sandbox uid) reaches only its own staging directory.
    await mkdir(building, { recursive: true, mode: 0o711 });
    await chmod(building, 0o711);
    const staging = await mkdtemp(join(building, `${spec.key}-`));
    try {
      await this.install(spec, staging, timeoutMs);
      // The build ran package code that could write anything into staging: keep only the import
      // directory, a real one (lstat: not a link out), and create the manifest ourselves (below,
      // O_EXCL: never through a link or FIFO the build left).
      await keepOnly(staging, layerImportDir(spec.ecosystem));
      const importDir = join(staging, layerImportDir(spec.ecosystem));
      if (!(await lstat(importDir).catch(() => undefined))?.isDirectory()) {
        throw new PodflowError('DEPENDENCY_INSTALL_FAILED', installFailureMessage(spec.ecosystem, spec.specs, 'the installer succeeded but created no ' + layerImportDir(spec.ecosystem) + ' directory', ''));
      }
      // Sandboxes run under other uids: everything readable, nothing writable but by the owner.
      const sizeBytes = await normalisePermissions(staging);
      const manifest: LayerManifest = {
        key: spec.key,
        runtimeId: spec.runtimeId,
        ecosystem: spec.ecosystem,
        specs: spec.specs,
        sizeBytes,
        createdAt: new Date().toISOString(),
        builtBy: this.options.builtBy,
      };
      await writeFile(join(staging, LAYER_MANIFEST_FILE), JSON.stringify(manifest, null, 2), { mode: 0o644, flag: 'wx' });
      await chmod(staging, 0o755);
      try {
        await rename(staging, this.hostPathOf(spec.key));
      } catch (error) {
        // Someone published the same layer first (the lease expired under a slow build): theirs stands.
        const existing = await this.lookup(spec.key);
        if (!existing) throw error;
        await rm(staging, { recursive: true, force: true });
        return existing;
      }
      return manifest;
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      throw error;
    }
  }

  /** Evicts least recently used layers while the cache is above its size cap. */
  async afterBuild(built: LayerManifest): Promise<void> {
    const usages: LayerUsage[] = [];
    for (const key of (await readdir(this.options.root)).filter((name) => KEY_PATTERN.test(name))) {
      const manifest = await this.lookup(key);
      if (!manifest) continue;
      const used = await stat(join(this.options.root, '.used', key)).catch(() => undefined);
      usages.push({ key, sizeBytes: manifest.sizeBytes, lastUsedAt: used?.mtimeMs ?? Date.parse(manifest.createdAt) });
    }
    const victims = chooseEvictions(usages, { maxBytes: this.options.maxBytes, minIdleMs: this.options.minIdleMs, now: Date.now(), keep: [built.key] });
    for (const victim of victims) {
      const trash = join(this.options.root, '.trash');
      await mkdir(trash, { recursive: true, mode: 0o700 });
      // Unpublish with one rename (lookups stop finding it at once), then delete at leisure.
      const doomed = join(trash, `${victim.key}-${randomBytes(4).toString('hex')}`);
      await rename(this.hostPathOf(victim.key), doomed);
      await rm(join(this.options.root, '.used', victim.key), { force: true });
      await rm(doomed, { recursive: true, force: true });
      this.options.logger?.info({ key: victim.key, sizeBytes: victim.sizeBytes, lastUsedAt: new Date(victim.lastUsedAt).toISOString() }, 'evicted a dependency layer (cache above its size cap)');
    }
    if (victims.length > 0) this.options.onEvicted?.(victims.length);
  }

  private async install(spec: LayerSpec, staging: string, timeoutMs: number): Promise<void> {
    const home = join(this.options.root, '.installer-home');
    await mkdir(home, { recursive: true, mode: 0o700 });
    const argvFor = (target: string): string[] => installerArgv(spec.ecosystem, target, spec.specs, this.options.commands, this.options.installer);
    const argv = argvFor(staging);
    const run = this.options.runInstaller ?? runHostInstaller;
    const ended = await run({ argv: argvFor, staging, env: installerEnv(this.options.hostEnv, home), timeoutMs, label: spec.key });
    const tail = installerOutputTail(ended.output);
    if (ended.kind === 'timeout') {
      throw new PodflowError('DEPENDENCY_INSTALL_FAILED', installFailureMessage(spec.ecosystem, spec.specs, `timed out after ${describeDuration(timeoutMs)}, see LAYER_INSTALL_TIMEOUT_MS`, tail));
    }
    if (ended.kind === 'signal') {
      throw new PodflowError('SANDBOX_LOST', `the dependency layer builder (${argv[0]}, pid ${ended.pid}) was killed by ${ended.signal}; nothing was published and the next attempt builds the layer again`);
    }
    if (ended.kind === 'spawn-error') {
      throw new PodflowError('DEPENDENCY_INSTALL_FAILED', installFailureMessage(spec.ecosystem, spec.specs, `could not start ${argv[0]}: ${ended.message}`, ''));
    }
    if (ended.code !== 0) {
      throw new PodflowError('DEPENDENCY_INSTALL_FAILED', installFailureMessage(spec.ecosystem, spec.specs, `exit code ${ended.code}`, tail));
    }
  }

  /** Removes `.building` leftovers of builders that died (older than two install timeouts). */
  private async sweepStaleBuilds(timeoutMs: number): Promise<void> {
    const building = join(this.options.root, '.building');
    const entries = await readdir(building).catch(() => [] as string[]);
    for (const entry of entries) {
      const info = await lstat(join(building, entry)).catch(() => undefined);
      if (info && Date.now() - info.mtimeMs > 2 * timeoutMs) await rm(join(building, entry), { recursive: true, force: true });
    }
  }
}

/** Runs an installer as a plain child in its own process group (killed whole on timeout), output merged and capped. */
export function runHostInstaller(options: InstallerRun): Promise<InstallerEnding> {
  const argv = options.argv(options.staging);
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: options.staging, env: options.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.length > OUTPUT_CAP_BYTES) output = output.slice(-OUTPUT_CAP_BYTES);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ kind: 'spawn-error', message: error.message, output });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) resolve({ kind: 'timeout', output });
      else if (signal) resolve({ kind: 'signal', signal, pid: child.pid ?? 0, output });
      else resolve({ kind: 'exit', code: code ?? 1, output });
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Removes every top-level entry of `dir` but `name` (links and special files included, never followed). */
async function keepOnly(dir: string, name: string): Promise<void> {
  for (const entry of await readdir(dir)) {
    if (entry !== name) await rm(join(dir, entry), { recursive: true, force: true });
  }
}

/**
 * Makes a tree world-readable (directories traversable) and returns its size in bytes. As root it
 * also gives everything back to root: a confined build ran as a sandbox uid, and that uid is
 * handed to later sandboxes.
 */
async function normalisePermissions(dir: string): Promise<number> {
  let size = 0;
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await lchown(dir, 0, 0);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (asRoot) await lchown(path, 0, 0);
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) {
      await chmod(path, 0o755);
      size += await normalisePermissions(path);
    } else if (entry.isFile()) {
      const info = await stat(path);
      await chmod(path, info.mode & 0o111 ? 0o755 : 0o644);
      size += info.size;
    }
  }
  return size;
}

/** `cpython-3.11.2-linux-x86_64` or `node-v20.20.2-linux-x64`: what a compiled package depends on. */
function probeRuntime(kind: 'python' | 'node', binary: string): Promise<string> {
  const args =
    kind === 'python'
      ? ['-I', '-c', "import sys, sysconfig; print(f'{sys.implementation.name}-{sys.version.split()[0]}-{sysconfig.get_platform()}')"]
      : ['-p', "`node-${process.version}-${process.platform}-${process.arch}`"];
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.once('error', (error) => reject(new PodflowError('SANDBOX_LOST', `could not run ${binary} to identify the ${kind} runtime: ${error.message}`)));
    child.once('close', (code) => {
      if (code === 0 && out.trim()) resolve(`${out.trim()}@${binary}`);
      else reject(new PodflowError('SANDBOX_LOST', `${binary} failed to report its version (exit ${code})`));
    });
  });
}
