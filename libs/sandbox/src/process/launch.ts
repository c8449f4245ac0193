/**
 * Pure builder of the command chain that starts one sandbox. Each link does one thing and execs
 * the next, so the sandbox's parent stays the worker (bwrap `--die-with-parent`):
 *
 *   sh (mounts the execution's home tmpfs, joins its cgroups, as root)
 *   → nsenter --net (the execution's egress network namespace, as root)
 *   → setpriv (drops to the execution's dedicated host uid, no supplementary groups)
 *   → prlimit (rlimits) → bwrap → interpreter + runner
 *
 * With `podflow-launch` built (libs/sandbox/native, one small static C program), the root link
 * does all of that in one exec instead of five and a fork (~3 ms of CPU per sandbox):
 *
 *   podflow-launch --home … --cgroup … --netns … --uid … --as=… -- bwrap → interpreter + runner
 *
 * Links that are not needed are left out; without cgroups and egress the chain starts at
 * prlimit and the uid is dropped by `spawn` itself.
 */

import { resolve } from 'node:path';

/** Where `npm run build` puts podflow-launch (scripts/build-launcher.mjs): dist/ of this package, from src/ or dist/. */
export const BUILT_LAUNCHER = resolve(__dirname, '..', '..', 'dist', 'podflow-launch');

/** The host binaries of the chain, resolved to absolute paths at start-up. */
export interface LaunchBinaries {
  /** The shell, nsenter and setpriv of the chain without `launcher`. */
  sh?: string;
  nsenter?: string;
  setpriv?: string;
  /** util-linux `mount`, for the home tmpfs. */
  mount?: string;
  /** `podflow-launch` (native/podflow-launch.c): replaces the root link, nsenter, setpriv and prlimit. */
  launcher?: string;
  /** util-linux `prlimit`, for `LaunchSpec.rlimits`. */
  prlimit?: string;
}

/**
 * A size-limited tmpfs the root link mounts at the execution's home before anything else runs,
 * owned by the sandbox uid. Mounted by the chain rather than by the worker: a `mount` started by
 * a tiny shell costs a fraction of one forked from the worker (fork copies the worker's page
 * tables, ~4 ms of its event loop at 130 MiB), and a warm sandbox pays it before its execution.
 */
export interface HomeTmpfs {
  dir: string;
  sizeBytes: number;
}

export interface LaunchSpec {
  /** `bwrap ...` (or the bare runner): what runs once the chain is set up. */
  command: string[];
  /** The command's rlimits as `prlimit` flags (`--as=N`, rlimits.ts), set last, as the sandbox uid. */
  rlimits?: string[];
  /** `cgroup.procs` files the sandbox joins before anything else runs. */
  cgroupProcsFiles?: string[];
  /** Mounted first (needs `binaries.mount` and `uid`). */
  homeTmpfs?: HomeTmpfs;
  /** Network namespace to enter (`/proc/<pid>/ns/net` of the egress holder). */
  netnsPath?: string;
  /** Dedicated host uid (and gid) of the sandbox. */
  uid?: number;
  binaries: LaunchBinaries;
}

export interface LaunchPlan {
  argv: string[];
  /** Identity `spawn` switches to before exec (when no root-only link needs root first). */
  spawnIds?: { uid: number; gid: number };
}

/**
 * Exit code of the root link when it cannot mount the home or join a group (outside the
 * 126-128+N range of shells and signals); its stderr says which, after `podflow-launch: `.
 */
export const LAUNCH_SETUP_FAILED_EXIT = 125;

/**
 * `--home <mount> <options> <dir>` first, optionally: mounts the home tmpfs (before joining the
 * groups, so the execution's budget is not charged for it). Then writes its own pid into each
 * `cgroup.procs` given before `--`, and execs the rest. A pid written before exec stays the
 * same, so everything the code later starts is in the groups too.
 */
const ROOT_LINK_SCRIPT =
  `if [ "$1" = "--home" ]; then "$2" -t tmpfs -o "$3" podflow-home "$4" || { echo "podflow-launch: cannot mount the home tmpfs at $4" >&2; exit ${LAUNCH_SETUP_FAILED_EXIT}; }; shift 4; fi; ` +
  `while [ "$1" != "--" ]; do echo $$ > "$1" || { echo "podflow-launch: cannot join cgroup $1" >&2; exit ${LAUNCH_SETUP_FAILED_EXIT}; }; shift; done; shift; exec "$@"`;

/** The tmpfs options of a home: its size is the execution's quota, its root the sandbox uid's alone. */
export function homeTmpfsOptions(sizeBytes: number, uid: number): string {
  return `size=${sizeBytes},mode=0700,uid=${uid},gid=${uid},nosuid,nodev`;
}

/** The argv (and spawn identity) that starts `spec.command` inside its cgroups, network and uid. */
export function buildLaunch(spec: LaunchSpec): LaunchPlan {
  if (spec.command.length === 0) throw new Error('buildLaunch: the command is empty');
  const cgroups = spec.cgroupProcsFiles ?? [];
  const { binaries } = spec;
  const needsRoot = cgroups.length > 0 || spec.netnsPath !== undefined || spec.homeTmpfs !== undefined;
  if (spec.homeTmpfs && spec.uid === undefined) throw new Error('buildLaunch: a home tmpfs needs the sandbox uid');
  // The launcher also applies rlimits that no prlimit is there to apply (root without uids or cgroups).
  if (binaries.launcher && (needsRoot || (spec.rlimits !== undefined && binaries.prlimit === undefined))) {
    return {
      argv: [
        binaries.launcher,
        ...(spec.homeTmpfs ? ['--home', spec.homeTmpfs.dir, String(spec.homeTmpfs.sizeBytes)] : []),
        ...cgroups.flatMap((file) => ['--cgroup', file]),
        ...(spec.netnsPath !== undefined ? ['--netns', spec.netnsPath] : []),
        ...(spec.uid !== undefined ? ['--uid', String(spec.uid)] : []),
        ...(spec.rlimits ?? []),
        '--',
        ...spec.command,
      ],
    };
  }
  const limited = spec.rlimits ? [required(binaries.prlimit, 'prlimit'), ...spec.rlimits, '--', ...spec.command] : spec.command;
  if (!needsRoot) {
    return { argv: limited, ...(spec.uid !== undefined ? { spawnIds: { uid: spec.uid, gid: spec.uid } } : {}) };
  }
  const argv: string[] = [];
  if (cgroups.length > 0 || spec.homeTmpfs) {
    const home = spec.homeTmpfs ? ['--home', required(binaries.mount, 'mount'), homeTmpfsOptions(spec.homeTmpfs.sizeBytes, spec.uid!), spec.homeTmpfs.dir] : [];
    argv.push(required(binaries.sh, 'sh'), '-c', ROOT_LINK_SCRIPT, 'podflow-launch', ...home, ...cgroups, '--');
  }
  if (spec.netnsPath !== undefined) argv.push(required(binaries.nsenter, 'nsenter'), `--net=${spec.netnsPath}`, '--');
  if (spec.uid !== undefined) {
    argv.push(required(binaries.setpriv, 'setpriv'), `--reuid=${spec.uid}`, `--regid=${spec.uid}`, '--clear-groups', '--');
  }
  argv.push(...limited);
  return { argv };
}

function required(path: string | undefined, name: string): string {
  if (path === undefined) throw new Error(`buildLaunch: this launch needs the ${name} binary`);
  return path;
}
