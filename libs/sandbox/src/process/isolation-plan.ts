import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { installationDirOf, SANDBOX_PATH, SANDBOX_RUNNER_PATHS, type RootEntry, type SyntheticEtc } from './bubblewrap';
import { compilePythonRunner } from './compiled-runner';
import {
  detectRootEntries,
  isReachableBy,
  probeBubblewrap,
  probePrlimit,
  probeUnprivilegedBubblewrap,
  resolveExecutable,
  runProbe,
  sweepStaleExecutions,
  writeSyntheticEtc,
} from './host-probe';
import type { SandboxLogger } from '../driver';
import { UidPool, type UidRange } from './uid-pool';
import { CgroupManager } from './cgroups';
import { EgressNetworks, type EgressBinaries } from './egress-network';
import type { LaunchBinaries } from './launch';
import { buildSeccompFilter, seccompArchOf } from './seccomp';

/** Where the driver's own tools (util-linux, slirp4netns, iproute2) are looked up. */
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Which sandboxing the process driver applies; `auto` picks bubblewrap when it works here. */
export type IsolationMode = 'bubblewrap' | 'none' | 'auto';

/** What the driver settled on at start-up; `ProcessDriver.init()` returns it. */
export interface IsolationReport {
  isolation: 'bubblewrap' | 'none';
  /** Why bubblewrap is not used (`none` only). */
  reason?: string;
  /** RLIMIT_AS/FSIZE (and NPROC with dedicated uids) are applied (`prlimit`, or podflow-launch as root). */
  rlimits: boolean;
  /** Each sandbox runs as its own unprivileged host uid (only when the driver runs as root). */
  dedicatedUids: boolean;
  /** One memory, process and CPU budget per execution (cgroup v1, root only). */
  cgroups: boolean;
  /** /home/user is a tmpfs of the execution's own whose size is a hard quota (root only). */
  homeQuota: boolean;
  /** Executions granted egress get their own network namespace (root, slirp4netns); else they fail. */
  egress: boolean;
  /** The seccomp filter bubblewrap loads (`seccomp.ts`); false on architectures it has no table for. */
  seccomp: boolean;
  /** Root's set-up before bwrap is one exec of podflow-launch (launch.ts); false: the sh chain, or no root set-up. */
  launcher: boolean;
}

export interface PlanInput {
  isolation: IsolationMode;
  platform: NodeJS.Platform;
  /** `process.getuid()` of the driver; `undefined` off POSIX. */
  hostUid: number | undefined;
  bwrapBin: string;
  prlimitBin: string;
  /** `podflow-launch`, for root drivers (`false`: the sh chain). */
  launcherBin: string | false;
  workRoot: string;
  sandboxUids: UidRange | false;
  interpreters: { python: string; node: string };
  /** Host files every sandbox mounts (runner programs). */
  runnerFiles: string[];
  /** The Python runner's source, compiled once for the sandboxes (`compiled-runner.ts`). */
  pythonRunner?: string;
  /** Ranges sandboxes granted egress may reach although they are private (`SANDBOX_EGRESS_ALLOW_CIDRS`). */
  egressAllowCidrs: string[];
  /** `false` skips per-execution cgroups even as root (tests of the rlimit path). */
  cgroups: boolean;
  logger?: SandboxLogger;
}

/** What the driver needs as root beyond bwrap: resolved once, so no PATH lookup happens per execution. */
export interface RootTools {
  launch: LaunchBinaries;
  mount: string;
  umount: string;
  /** The launcher also runs as a spawn server here (spawn-server.ts): it started and ended on a closed stdin. */
  spawnServer: boolean;
}

export type IsolationPlan =
  | {
      kind: 'bubblewrap';
      report: IsolationReport;
      bwrapBin: string;
      prlimitBin?: string;
      uids?: UidPool;
      cgroups?: CgroupManager;
      egress?: EgressNetworks;
      root?: RootTools;
      /** Compiled seccomp filter, handed to bwrap on a pipe. */
      seccomp?: Buffer;
      rootEntries: RootEntry[];
      syntheticEtc: SyntheticEtc;
      extraReadOnly: string[];
      /** Host path of the compiled Python runner the sandboxes run (absent: they run its source). */
      compiledPythonRunner?: string;
    }
  | { kind: 'none'; report: IsolationReport; prlimitBin?: string }
  | { kind: 'unavailable'; message: string };

/**
 * Execution directories older than this are leftovers of a dead worker (a live one disposes its
 * outcomes within minutes: node timeouts and uploads are far shorter).
 */
export const STALE_EXECUTION_MS = 24 * 60 * 60 * 1000;

export const NOT_ISOLATED_WARNING =
  'process sandbox is NOT isolated: install bubblewrap (apt-get install bubblewrap) so user code cannot read ' +
  'host files, reach the network or signal host processes; until then code runs as a plain child process';

/** Probes the host once and decides how executions will be sandboxed. */
export async function planIsolation(input: PlanInput): Promise<IsolationPlan> {
  await mkdir(input.workRoot, { recursive: true, mode: 0o711 });
  const umountBin = input.hostUid === 0 ? await resolveExecutable('umount', SYSTEM_PATH) : undefined;
  const swept = await sweepStaleExecutions(input.workRoot, STALE_EXECUTION_MS, Date.now(), umountBin);
  if (swept > 0) input.logger?.info({ workRoot: input.workRoot, removed: swept }, 'removed stale sandbox directories');
  const prlimit = await probePrlimit(input.prlimitBin);
  const prlimitBin = prlimit.ok ? input.prlimitBin : undefined;
  if (!prlimit.ok) {
    input.logger?.warn({ detail: prlimit.detail }, 'prlimit (util-linux) is unavailable: sandbox memory and file size limits are NOT enforced (unless podflow-launch sets them, as root)');
  }
  if (input.isolation === 'none') return nonePlan('isolation: none was configured', prlimitBin, input.logger);
  if (input.platform !== 'linux') {
    return input.isolation === 'bubblewrap'
      ? { kind: 'unavailable', message: `bubblewrap isolation needs Linux; this host is ${input.platform}` }
      : nonePlan(`bubblewrap needs Linux; this host is ${input.platform}`, prlimitBin, input.logger);
  }
  const probe = await probeBubblewrap(input.bwrapBin);
  if (!probe.ok) {
    return input.isolation === 'bubblewrap'
      ? { kind: 'unavailable', message: `bubblewrap isolation was requested but does not work here: ${probe.detail}` }
      : nonePlan(`bubblewrap does not work here: ${probe.detail}`, prlimitBin, input.logger);
  }

  // Shared by every driver on this work root: the content is the same for all of them.
  const etcDir = join(input.workRoot, 'etc');
  const syntheticEtc = await writeSyntheticEtc(etcDir);
  const rootEntries = await detectRootEntries();
  const extraReadOnly = await interpreterDirs(input);
  const compiled = input.pythonRunner
    ? await compilePythonRunner(input.interpreters.python, input.pythonRunner, join(input.workRoot, 'runner'), SANDBOX_RUNNER_PATHS.python)
    : undefined;
  if (compiled && 'failed' in compiled) input.logger?.warn({ detail: compiled.failed }, 'could not compile the Python runner: sandboxes compile it at every start (~3.6 ms of CPU each)');
  const compiledPythonRunner = compiled && 'path' in compiled ? compiled.path : undefined;
  const uids = await dedicatedUids(input, [etcDir, ...input.runnerFiles, ...(compiledPythonRunner ? [compiledPythonRunner] : []), ...extraReadOnly]);
  const root = input.hostUid === 0 ? await rootTools(input.launcherBin, input.logger) : undefined;
  const cgroups = root && input.cgroups ? await CgroupManager.detect(input.logger) : undefined;
  if (cgroups) await cgroups.sweep();
  const egress = root ? await egressNetworks(input) : undefined;
  const arch = seccompArchOf(process.arch);
  const seccomp = arch ? buildSeccompFilter(arch) : undefined;
  if (!seccomp) input.logger?.warn({ arch: process.arch }, 'no seccomp filter for this architecture: sandboxes run without one');
  const report: IsolationReport = {
    isolation: 'bubblewrap',
    rlimits: prlimitBin !== undefined || root?.launch.launcher !== undefined,
    dedicatedUids: uids !== undefined,
    cgroups: cgroups !== undefined,
    homeQuota: root !== undefined,
    egress: egress !== undefined,
    seccomp: seccomp !== undefined,
    launcher: root?.launch.launcher !== undefined,
  };
  input.logger?.info({ ...report }, 'process sandbox: bubblewrap isolation');
  return { kind: 'bubblewrap', report, bwrapBin: input.bwrapBin, prlimitBin, uids, cgroups, egress, root, seccomp, rootEntries, syntheticEtc, extraReadOnly, compiledPythonRunner };
}


/** util-linux and sh, by absolute path; `undefined` (with a warning) when one is missing. */
async function rootTools(launcherBin: string | false, logger?: SandboxLogger): Promise<RootTools | undefined> {
  const names = { sh: 'sh', nsenter: 'nsenter', setpriv: 'setpriv', mount: 'mount', umount: 'umount' };
  const found: Record<string, string> = {};
  for (const [key, name] of Object.entries(names)) {
    const path = await resolveExecutable(name, SYSTEM_PATH);
    if (!path) {
      logger?.warn({ missing: name }, `${name} was not found: per-execution cgroups, home quotas and egress namespaces are off (install util-linux)`);
      return undefined;
    }
    found[key] = path;
  }
  const launcher = launcherBin === false ? undefined : await usableLauncher(launcherBin, logger);
  const spawnServer = launcher !== undefined && (await usableSpawnServer(launcher, logger));
  return { launch: { sh: found.sh, nsenter: found.nsenter, setpriv: found.setpriv, mount: found.mount, ...(launcher ? { launcher } : {}) }, mount: found.mount, umount: found.umount, spawnServer };
}

/**
 * Whether `podflow-launch --spawn-server` runs: it exits 0 when its stdin is closed at once. A
 * launcher that cannot (built from older source) would fail the first spawns before the worker
 * gave up on it; the worker spawns sandboxes itself instead.
 */
async function usableSpawnServer(launcher: string, logger?: SandboxLogger): Promise<boolean> {
  const probe = await runProbe(launcher, ['--spawn-server', String(process.pid)]);
  if (!probe.ok) logger?.warn({ launcher, detail: probe.detail }, 'podflow-launch --spawn-server does not run here: the worker spawns sandboxes itself');
  return probe.ok;
}

/** `launcherBin` when it exists and runs; else the sh chain does its work, ~3 ms more CPU per sandbox. */
async function usableLauncher(launcherBin: string, logger?: SandboxLogger): Promise<string | undefined> {
  if (!(await access(launcherBin, constants.X_OK).then(() => true, () => false))) {
    logger?.info({ launcher: launcherBin }, 'podflow-launch is not built (no C compiler at build time): sandboxes start through the sh chain');
    return undefined;
  }
  const probe = await runProbe(launcherBin, ['--uid', '65534', '--', 'true']);
  if (!probe.ok) {
    logger?.warn({ launcher: launcherBin, detail: probe.detail }, 'podflow-launch does not run here: sandboxes start through the sh chain');
    return undefined;
  }
  return launcherBin;
}

/** Egress namespaces when slirp4netns and iproute2 are here and one namespace can be built. */
async function egressNetworks(input: PlanInput): Promise<EgressNetworks | undefined> {
  const names: Record<keyof EgressBinaries, string> = { unshare: 'unshare', setpriv: 'setpriv', sleep: 'sleep', slirp4netns: 'slirp4netns', nsenter: 'nsenter', ip: 'ip' };
  const binaries = {} as EgressBinaries;
  for (const [key, name] of Object.entries(names) as Array<[keyof EgressBinaries, string]>) {
    const path = await resolveExecutable(name, SYSTEM_PATH);
    if (!path) {
      input.logger?.warn({ missing: name }, `${name} was not found: executions granted network egress will fail (apt-get install slirp4netns iproute2)`);
      return undefined;
    }
    binaries[key] = path;
  }
  const networks = new EgressNetworks({ binaries, allowedCidrs: input.egressAllowCidrs });
  try {
    const probe = await networks.open();
    await probe.close();
  } catch (error) {
    input.logger?.warn({ error: (error as Error).message }, 'sandbox egress networking does not work here: executions granted network egress will fail');
    return undefined;
  }
  return networks;
}

function nonePlan(reason: string, prlimitBin: string | undefined, logger?: SandboxLogger): IsolationPlan {
  // Said loudly once per driver: every execution after this runs with the worker's rights.
  logger?.warn({ reason }, NOT_ISOLATED_WARNING);
  return {
    kind: 'none',
    report: { isolation: 'none', reason, rlimits: prlimitBin !== undefined, dedicatedUids: false, cgroups: false, homeQuota: false, egress: false, seccomp: false, launcher: false },
    prlimitBin,
  };
}

/** Installation directories of interpreters outside /usr, mounted read-only at the same path. */
async function interpreterDirs(input: PlanInput): Promise<string[]> {
  const dirs = new Set<string>();
  for (const bin of [input.interpreters.python, input.interpreters.node]) {
    const real = await resolveExecutable(bin, SANDBOX_PATH);
    if (!real) {
      input.logger?.warn({ interpreter: bin }, `interpreter ${bin} was not found; executions that need it will fail with SANDBOX_LOST`);
      continue;
    }
    try {
      const dir = installationDirOf(real);
      if (dir) dirs.add(dir);
    } catch (error) {
      input.logger?.warn({ interpreter: bin, error: (error as Error).message }, 'interpreter cannot be mounted into the sandbox');
    }
  }
  return [...dirs];
}

/**
 * A uid pool when the driver runs as root and bwrap works as an unprivileged uid that can reach
 * every mounted host path; otherwise `undefined` (bwrap then runs as root with a user namespace).
 */
async function dedicatedUids(input: PlanInput, mountedPaths: string[]): Promise<UidPool | undefined> {
  if (input.sandboxUids === false || input.hostUid !== 0) return undefined;
  const pool = new UidPool(input.sandboxUids);
  const uid = input.sandboxUids.first;
  const probe = await probeUnprivilegedBubblewrap(input.bwrapBin, uid, uid);
  if (!probe.ok) {
    input.logger?.warn(
      { detail: probe.detail },
      'bubblewrap cannot run as an unprivileged uid (unprivileged user namespaces disabled?): sandboxes run as host root inside a user namespace and RLIMIT_NPROC is not enforced',
    );
    return undefined;
  }
  const checks = [{ path: input.workRoot, need: 'search' as const }, ...mountedPaths.map((path) => ({ path, need: 'read' as const }))];
  for (const { path, need } of checks) {
    if (!(await isReachableBy(path, uid, uid, need))) {
      input.logger?.warn(
        { path },
        `${path} is not readable by unprivileged uids, so sandboxes run as host root inside a user namespace; make it world-readable (and its parent directories searchable) to drop root`,
      );
      return undefined;
    }
  }
  return pool;
}
