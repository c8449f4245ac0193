/**
 * Pure builder of the command chain that starts one sandbox. Each link does one thing and execs
 * the next, so the sandbox's parent stays the worker (bwrap `--die-with-parent`):
 *
 *   sh (joins the execution's cgroups, as root)
 *   → nsenter --net (the execution's egress network namespace, as root)
 *   → setpriv (drops to the execution's dedicated host uid, no supplementary groups)
 *   → prlimit (rlimits) → bwrap → interpreter + runner
 *
 * Links that are not needed are left out; without cgroups and egress the chain starts at
 * prlimit and the uid is dropped by `spawn` itself.
 */

/** The host binaries of the chain, resolved to absolute paths at start-up. */
export interface LaunchBinaries {
  sh: string;
  nsenter: string;
  setpriv: string;
}

export interface LaunchSpec {
  /** `prlimit ... bwrap ...` (or the bare runner): what runs once the chain is set up. */
  command: string[];
  /** `cgroup.procs` files the sandbox joins before anything else runs. */
  cgroupProcsFiles?: string[];
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

/** Exit code of the cgroup link when it cannot join a group (outside the 126-128+N range of shells and signals). */
export const CGROUP_JOIN_FAILED_EXIT = 125;

/**
 * Writes its own pid into each `cgroup.procs` given before `--`, then execs the rest. A pid
 * written before exec stays the same, so everything the code later starts is in the groups too.
 */
const JOIN_CGROUPS_SCRIPT =
  `while [ "$1" != "--" ]; do echo $$ > "$1" || { echo "podflow-launch: cannot join cgroup $1" >&2; exit ${CGROUP_JOIN_FAILED_EXIT}; }; shift; done; shift; exec "$@"`;

/** The argv (and spawn identity) that starts `spec.command` inside its cgroups, network and uid. */
export function buildLaunch(spec: LaunchSpec): LaunchPlan {
  if (spec.command.length === 0) throw new Error('buildLaunch: the command is empty');
  const cgroups = spec.cgroupProcsFiles ?? [];
  const needsRoot = cgroups.length > 0 || spec.netnsPath !== undefined;
  if (!needsRoot) {
    return { argv: spec.command, ...(spec.uid !== undefined ? { spawnIds: { uid: spec.uid, gid: spec.uid } } : {}) };
  }
  const argv: string[] = [];
  if (cgroups.length > 0) argv.push(spec.binaries.sh, '-c', JOIN_CGROUPS_SCRIPT, 'podflow-launch', ...cgroups, '--');
  if (spec.netnsPath !== undefined) argv.push(spec.binaries.nsenter, `--net=${spec.netnsPath}`, '--');
  if (spec.uid !== undefined) {
    argv.push(spec.binaries.setpriv, `--reuid=${spec.uid}`, `--regid=${spec.uid}`, '--clear-groups', '--');
  }
  argv.push(...spec.command);
  return { argv };
}
