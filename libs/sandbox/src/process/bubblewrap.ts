/**
 * Pure builder of the bubblewrap (`bwrap`) command line of one execution. The host facts it needs
 * (how /bin and /lib are laid out, where the interpreters live) are inspected elsewhere
 * (`host-probe.ts`) and passed in, so every decision here is unit-tested without a sandbox.
 */

import { LAYER_MOUNT_PATH } from '../layers/layer';

/** The code's working directory inside the sandbox (DESIGN.md, the Code node contract). */
export const SANDBOX_HOME = '/home/user';
/** Where the runner programs are mounted read-only inside the sandbox. */
export const SANDBOX_RUNNER_DIR = '/opt/podflow/runner';
export const SANDBOX_RUNNER_PATHS = {
  python: `${SANDBOX_RUNNER_DIR}/podflow_runner.py`,
  /** The runner compiled by the driver (`compiled-runner.ts`), when it could be. */
  pythonCompiled: `${SANDBOX_RUNNER_DIR}/podflow_runner.pyc`,
  node: `${SANDBOX_RUNNER_DIR}/node-runner.js`,
} as const;
/** The unprivileged identity the code runs as inside the sandbox's user namespace. */
export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 1000;
export const SANDBOX_PATH = '/usr/local/bin:/usr/bin:/bin';

/** A top-level directory of the host root besides /usr: a symlink into /usr (merged /usr) or a real directory. */
export type RootEntry = { path: string; symlinkTo: string } | { path: string; directory: true };

/** Host files synthesized by the driver so no host account or host name leaks into the sandbox. */
export interface SyntheticEtc {
  passwd: string;
  group: string;
  hosts: string;
  /** `nameserver` of slirp4netns, for sandboxes granted egress (the host's resolver may be a private address they cannot reach). */
  resolvConf: string;
}

export interface BubblewrapSpec {
  /** Host directory mounted read-write at `/home/user`. */
  homeDir: string;
  /** /bin, /lib, /lib64, /sbin as found on the host. */
  rootEntries: RootEntry[];
  syntheticEtc: SyntheticEtc;
  /**
   * Host paths of the runner programs (absent for installers, which run no user code). A Python
   * runner ending in `.pyc` is mounted at `SANDBOX_RUNNER_PATHS.pythonCompiled`.
   */
  runner?: { python: string; node: string };
  /** Host directories mounted read-only at the same path (interpreters installed outside /usr). */
  extraReadOnly: string[];
  /** Host directory of the execution's dependency layer, mounted read-only at `LAYER_MOUNT_PATH`. */
  layerDir?: string;
  /**
   * Keep the network namespace bwrap starts in: the execution's egress namespace, entered before
   * bwrap (`launch.ts`); never the host's. `false`: a private namespace with only loopback.
   */
  network: boolean;
  /** Size cap of the private `/tmp` tmpfs, in bytes. */
  tmpSizeBytes?: number;
  /** Size cap of `/dev/shm` (POSIX shared memory, RAM-backed), in bytes. */
  shmSizeBytes?: number;
  /** Fd from which bwrap loads a compiled seccomp BPF program (`seccomp.ts`). */
  seccompFd?: number;
  /** Fd on which bwrap reports `{"child-pid": N}` (used to wait for the namespace to be gone). */
  infoFd?: number;
  /** Environment of the sandboxed command; nothing else of the host environment is passed. */
  env: Record<string, string>;
  /** The command to run inside, interpreter first. */
  command: string[];
}

/**
 * /etc files the interpreters need (dynamic loader cache, TLS roots, time zone, MIME table).
 * Each is optional on the host, hence `--ro-bind-try`. Accounts and host names are synthesized.
 */
export const ETC_READ_ONLY = [
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/alternatives',
  '/etc/ssl',
  '/etc/ca-certificates',
  '/etc/pki',
  '/etc/localtime',
  '/etc/mime.types',
  '/etc/nsswitch.conf',
] as const;

/** Extra /etc files only a sandbox with network egress needs (resolv.conf is synthesized). */
export const ETC_NETWORK = ['/etc/gai.conf'] as const;

/** Default size of `/dev/shm`. */
export const DEFAULT_SHM_SIZE_BYTES = 16 * 1024 * 1024;

/** The bwrap arguments (without the `bwrap` binary itself) for one execution. */
export function buildBubblewrapArgs(spec: BubblewrapSpec): string[] {
  if (spec.command.length === 0) throw new Error('buildBubblewrapArgs: the command is empty');
  return [
    ...namespaceArgs(spec),
    ...filesystemArgs(spec),
    '--chdir',
    SANDBOX_HOME,
    ...environmentArgs(spec.env),
    ...(spec.infoFd !== undefined ? ['--info-fd', String(spec.infoFd)] : []),
    ...(spec.seccompFd !== undefined ? ['--seccomp', String(spec.seccompFd)] : []),
    '--',
    ...spec.command,
  ];
}

function namespaceArgs(spec: BubblewrapSpec): string[] {
  return [
    // user, ipc, pid, net, uts and cgroup namespaces; the net one holds only a loopback device.
    '--unshare-all',
    ...(spec.network ? ['--share-net'] : []),
    '--unshare-user',
    // The code cannot build further namespaces (a common kernel attack surface).
    '--disable-userns',
    '--uid',
    String(SANDBOX_UID),
    '--gid',
    String(SANDBOX_GID),
    '--hostname',
    'sandbox',
    // The sandbox dies with the driver; its own session stops TIOCSTI tricks on a terminal.
    '--die-with-parent',
    '--new-session',
    '--cap-drop',
    'ALL',
  ];
}

function filesystemArgs(spec: BubblewrapSpec): string[] {
  const args = ['--ro-bind', '/usr', '/usr'];
  for (const entry of spec.rootEntries) {
    if ('symlinkTo' in entry) args.push('--symlink', entry.symlinkTo, entry.path);
    else args.push('--ro-bind', entry.path, entry.path);
  }
  for (const path of ETC_READ_ONLY) args.push('--ro-bind-try', path, path);
  args.push('--ro-bind', spec.syntheticEtc.passwd, '/etc/passwd', '--ro-bind', spec.syntheticEtc.group, '/etc/group');
  // The host's /etc/hosts names host services; the sandbox knows only itself.
  args.push('--ro-bind', spec.syntheticEtc.hosts, '/etc/hosts');
  if (spec.network) {
    args.push('--ro-bind', spec.syntheticEtc.resolvConf, '/etc/resolv.conf');
    for (const path of ETC_NETWORK) args.push('--ro-bind-try', path, path);
  }
  args.push('--proc', '/proc', '--dev', '/dev');
  // /dev itself is a tmpfs without a size: only /dev/shm (sized) stays writable.
  args.push('--perms', '1777', '--size', String(spec.shmSizeBytes ?? DEFAULT_SHM_SIZE_BYTES), '--tmpfs', '/dev/shm', '--remount-ro', '/dev');
  if (spec.tmpSizeBytes !== undefined) args.push('--size', String(spec.tmpSizeBytes));
  args.push('--perms', '1777', '--tmpfs', '/tmp');
  for (const dir of spec.extraReadOnly) args.push('--ro-bind', dir, dir);
  if (spec.runner) {
    args.push('--ro-bind', spec.runner.python, spec.runner.python.endsWith('.pyc') ? SANDBOX_RUNNER_PATHS.pythonCompiled : SANDBOX_RUNNER_PATHS.python);
    args.push('--ro-bind', spec.runner.node, SANDBOX_RUNNER_PATHS.node);
  }
  if (spec.layerDir !== undefined) args.push('--ro-bind', spec.layerDir, LAYER_MOUNT_PATH);
  args.push('--bind', spec.homeDir, SANDBOX_HOME);
  // The root itself is a bwrap tmpfs: make it read-only so only /home/user and /tmp are writable.
  args.push('--remount-ro', '/');
  return args;
}

function environmentArgs(env: Record<string, string>): string[] {
  const args = ['--clearenv'];
  for (const [name, value] of Object.entries(env)) args.push('--setenv', name, value);
  return args;
}

/**
 * The installation directory to mount for an interpreter at `realPath` (symlinks resolved), or
 * `undefined` when it lives under /usr, /bin or /sbin, which are mounted anyway. `…/bin/node` mounts `…` (the
 * prefix, which holds its `lib/`), anything else its own directory.
 */
export function installationDirOf(realPath: string): string | undefined {
  if (realPath === '/usr' || realPath.startsWith('/usr/')) return undefined;
  const dir = realPath.slice(0, realPath.lastIndexOf('/')) || '/';
  // Real /bin and /sbin directories (no merged /usr) are mounted as root entries already.
  if (dir === '/bin' || dir === '/sbin') return undefined;
  const prefix = dir.endsWith('/bin') ? dir.slice(0, -'/bin'.length) : dir;
  if (prefix === '' || prefix === '/') {
    throw new Error(`the interpreter ${realPath} lives directly under /; install it under /usr or a prefix directory`);
  }
  return prefix;
}
