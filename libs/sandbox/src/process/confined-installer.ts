import { spawnSync } from 'node:child_process';
import { chown, cp, lstat, mkdtemp, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { SandboxLogger } from '../driver';
import type { InstallerEnding, InstallerRun } from '../layers/installer';
import { buildBubblewrapArgs, SANDBOX_HOME, SANDBOX_PATH } from './bubblewrap';
import type { ExecutionCgroup } from './cgroups';
import type { EgressNamespace } from './egress-network';
import type { IsolationPlan } from './isolation-plan';
import { buildLaunch } from './launch';
import { runSandboxProcess } from './sandbox-process';

/**
 * Dependency installs of the process driver, confined like user code: `pip install` of an sdist
 * or an npm install script runs the package author's code, so it gets what a sandbox gets. The
 * staging directory is its `/home/user` (the only writable host path), HOME is a fresh tmpfs (no
 * shared download cache that one build could poison for another), the environment is the
 * installer's filtered one, and the network is a granted-egress namespace: the public internet and
 * the operator's allowed ranges, never the host, its loopback or private ranges.
 */
export interface ConfinedInstallerOptions {
  /** Memory budget of one install (cgroup, and RLIMIT_AS per process is not applied: compilers map a lot). */
  memoryBytes: number;
  /** Processes of one install (compilers fork). */
  maxProcesses: number;
  cpuMillis: number;
  /** Size of the install's RAM-backed /tmp (build trees, wheels, HOME). */
  tmpSizeBytes: number;
  /**
   * The most a layer may hold: the build writes into a tmpfs of this size (charged to its
   * cgroup, RAM-backed) and only what it made is copied to the layer cache on disk, so no build
   * can fill the host's disk. Also its RLIMIT_FSIZE.
   */
  maxLayerBytes: number;
  /** Where the scratch tmpfs is mounted (the driver's work root). */
  scratchRoot: string;
  /** The interpreter that runs npm (its directory goes first on PATH for `#!/usr/bin/env node`). */
  nodeBin: string;
  logger?: SandboxLogger;
}

/** RLIMIT_NOFILE of an install (npm opens many files at once). */
const INSTALLER_MAX_OPEN_FILES = 4096;
/** Output kept in memory (the error shows its tail). */
const OUTPUT_CAP_BYTES = 4 * 1024 * 1024;
const STDERR_TAIL_BYTES = 256 * 1024;

export async function runConfinedInstaller(plan: Extract<IsolationPlan, { kind: 'bubblewrap' }>, options: ConfinedInstallerOptions, run: InstallerRun): Promise<InstallerEnding> {
  if (!plan.egress) {
    return {
      kind: 'spawn-error',
      message:
        'installers run confined with network egress of their own, which this worker cannot set up (it must run as root with ' +
        'slirp4netns, iproute2 and util-linux; see its start-up log)',
      output: '',
    };
  }
  const uid = plan.uids?.acquire();
  let cgroup: ExecutionCgroup | undefined;
  let egress: EgressNamespace | undefined;
  let scratch: Scratch | undefined;
  try {
    scratch = await openScratch(plan, options, run.label);
    const target = scratch?.dir ?? run.staging;
    if (uid !== undefined) await chown(target, uid, uid);
    cgroup = await plan.cgroups?.create({ memoryBytes: options.memoryBytes, maxProcesses: options.maxProcesses, cpuMillis: options.cpuMillis });
    egress = await plan.egress.open();
    const env = { ...run.env, HOME: '/tmp', TMPDIR: '/tmp', PATH: `${dirname(options.nodeBin)}:${SANDBOX_PATH}`, npm_config_cache: '/tmp/.npm' };
    const bwrap = [
      plan.bwrapBin,
      ...buildBubblewrapArgs({
        homeDir: target,
        rootEntries: plan.rootEntries,
        syntheticEtc: plan.syntheticEtc,
        extraReadOnly: plan.extraReadOnly,
        network: true,
        tmpSizeBytes: options.tmpSizeBytes,
        infoFd: 3,
        ...(plan.seccomp ? { seccompFd: 4 } : {}),
        env,
        command: run.argv(SANDBOX_HOME),
      }),
    ];
    // No RLIMIT_AS (compilers map a lot; the cgroup holds memory); files capped in size and number.
    const limits = ['--core=0', `--nofile=${INSTALLER_MAX_OPEN_FILES}`, `--fsize=${options.maxLayerBytes}`, ...(uid !== undefined ? [`--nproc=${options.maxProcesses}`] : [])];
    const launch = buildLaunch({
      command: bwrap,
      ...(plan.prlimitBin || plan.root?.launch.launcher ? { rlimits: limits } : {}),
      ...(plan.root ? { cgroupProcsFiles: cgroup?.procsFiles, netnsPath: egress.path, uid } : {}),
      binaries: { ...plan.root?.launch, prlimit: plan.prlimitBin },
    });
    const ended = await runSandboxProcess({
      command: launch.argv[0],
      args: launch.argv.slice(1),
      cwd: target,
      env,
      stdin: '',
      stdoutCapBytes: OUTPUT_CAP_BYTES,
      stderrTailBytes: STDERR_TAIL_BYTES,
      timeoutMs: run.timeoutMs,
      signal: new AbortController().signal,
      infoFd: true,
      ...(plan.seccomp ? { seccompProgram: plan.seccomp } : {}),
    });
    const output = `${ended.stdout}${ended.stderrTail}`;
    if (ended.termination === 'timeout') return { kind: 'timeout', output };
    if (ended.termination === 'spawn-failed') return { kind: 'spawn-error', message: ended.spawnError ?? 'spawn failed', output };
    if ((await cgroup?.oomKilled()) === true) {
      return { kind: 'exit', code: 137, output: `${output}\nthe installer ran out of memory (limit ${Math.round(options.memoryBytes / 1024 / 1024)} MiB, LAYER_INSTALL_MEMORY_MB)` };
    }
    if (ended.signal) return { kind: 'signal', signal: ended.signal, pid: 0, output };
    // The build is dead (its pid namespace is gone): what it left can be copied without a race.
    if (scratch && ended.exitCode === 0) await copyLayer(scratch.dir, run.staging);
    return { kind: 'exit', code: ended.exitCode ?? 1, output };
  } catch (error) {
    return { kind: 'spawn-error', message: (error as Error).message, output: '' };
  } finally {
    await scratch?.close();
    await egress?.close();
    await cgroup?.remove().catch((error: Error) => options.logger?.warn({ error: error.message }, 'could not remove an installer cgroup'));
    if (uid !== undefined) plan.uids?.release(uid);
  }
}

interface Scratch {
  dir: string;
  close(): Promise<void>;
}

/** A tmpfs of `maxLayerBytes` under the work root (root only; `undefined` elsewhere: the build writes straight into staging). */
async function openScratch(plan: Extract<IsolationPlan, { kind: 'bubblewrap' }>, options: ConfinedInstallerOptions, label = 'build'): Promise<Scratch | undefined> {
  if (!plan.root) return undefined;
  const { mount, umount } = plan.root;
  // The pid in the name lets the next driver sweep it at once if this worker dies mid-build; the
  // label (a layer key) tells an operator which build it is.
  const dir = await mkdtemp(join(options.scratchRoot, `install-${process.pid}-${label.replace(/[^A-Za-z0-9]/g, '').slice(0, 16)}-`));
  const mounted = spawnSync(mount, ['-t', 'tmpfs', '-o', `size=${options.maxLayerBytes},mode=0700,nosuid,nodev`, 'podflow-install', dir], { encoding: 'utf8' });
  if (mounted.status !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`could not mount the install's scratch tmpfs at ${dir}: ${mounted.stderr.trim()}`);
  }
  return {
    dir,
    close: async () => {
      spawnSync(umount, ['--lazy', dir]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Copies directories, regular files and symbolic links (never followed); FIFOs, sockets and devices stay behind. */
async function copyLayer(from: string, to: string): Promise<void> {
  await cp(from, to, {
    recursive: true,
    verbatimSymlinks: true,
    filter: async (source) => {
      const info = await lstat(source);
      return info.isDirectory() || info.isFile() || info.isSymbolicLink();
    },
  });
}
