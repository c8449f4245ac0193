import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, chmod, lstat, mkdir, readFile, readdir, readlink, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { SANDBOX_GID, SANDBOX_HOME, SANDBOX_UID, type RootEntry, type SyntheticEtc } from './bubblewrap';
import { SLIRP } from './egress-routes';

/** What a probe command did: `ok` when it exited 0; `detail` says why not otherwise. */
export interface ProbeResult {
  ok: boolean;
  detail: string;
}

const PROBE_TIMEOUT_MS = 10_000;

/** Runs a short command (optionally as another uid) and reports whether it exited 0. */
export function runProbe(command: string, args: string[], ids?: { uid: number; gid: number }): Promise<ProbeResult> {
  return new Promise((done) => {
    let stderr = '';
    let settled = false;
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      done(result);
    };
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], ...(ids ?? {}) });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish({ ok: false, detail: `\`${command}\` did not finish within ${PROBE_TIMEOUT_MS / 1000}s` });
    }, PROBE_TIMEOUT_MS);
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString('utf8');
    });
    child.on('error', (error: NodeJS.ErrnoException) =>
      finish({ ok: false, detail: `\`${command}\` could not be started (${error.code ?? error.message})` }),
    );
    child.on('close', (code, signal) =>
      finish(
        code === 0
          ? { ok: true, detail: '' }
          : { ok: false, detail: `\`${[command, ...args].join(' ')}\` exited with ${code ?? signal}: ${stderr.trim()}` },
      ),
    );
  });
}

/** The bwrap probe of the brief: can this host run `bwrap --ro-bind / / true`? */
export function probeBubblewrap(bwrapBin: string): Promise<ProbeResult> {
  return runProbe(bwrapBin, ['--ro-bind', '/', '/', 'true']);
}

/**
 * Can bwrap run as an unprivileged host uid (it then needs unprivileged user namespaces)? Only
 * then do sandboxes run without host root and does RLIMIT_NPROC apply to them.
 */
export function probeUnprivilegedBubblewrap(bwrapBin: string, uid: number, gid: number): Promise<ProbeResult> {
  return runProbe(bwrapBin, ['--unshare-user', '--disable-userns', '--ro-bind', '/', '/', 'true'], { uid, gid });
}

/** Can `prlimit` (util-linux) set rlimits here? */
export function probePrlimit(prlimitBin: string): Promise<ProbeResult> {
  return runProbe(prlimitBin, ['--core=0', '--', 'true']);
}

const ROOT_DIRS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** How /bin, /lib... look on this host: merged-/usr symlinks are recreated, real dirs mounted. */
export async function detectRootEntries(): Promise<RootEntry[]> {
  const entries: RootEntry[] = [];
  for (const path of ROOT_DIRS) {
    const info = await lstat(path).catch(() => undefined);
    if (info?.isSymbolicLink()) entries.push({ path, symlinkTo: await readlink(path) });
    else if (info?.isDirectory()) entries.push({ path, directory: true });
  }
  return entries;
}

/**
 * Writes the /etc/passwd, /etc/group and /etc/hosts the sandbox sees: one account for the
 * sandbox uid and a loopback-only hosts file, so no host account or host name is visible.
 */
export async function writeSyntheticEtc(dir: string): Promise<SyntheticEtc> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await chmod(dir, 0o755);
  const files: SyntheticEtc = { passwd: join(dir, 'passwd'), group: join(dir, 'group'), hosts: join(dir, 'hosts'), resolvConf: join(dir, 'resolv.conf') };
  await writeAtomically(files.passwd, `user:x:${SANDBOX_UID}:${SANDBOX_GID}:podflow sandbox:${SANDBOX_HOME}:/usr/sbin/nologin\n`);
  await writeAtomically(files.group, `user:x:${SANDBOX_GID}:\n`);
  await writeAtomically(files.hosts, '127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost\n');
  await writeAtomically(files.resolvConf, `nameserver ${SLIRP.dns}\n`);
  return files;
}

/** Several drivers may share a work root: write beside and rename, so no one mounts half a file. */
async function writeAtomically(path: string, content: string): Promise<void> {
  const partial = `${path}.${randomBytes(6).toString('hex')}.partial`;
  await writeFile(partial, content, { mode: 0o644 });
  await chmod(partial, 0o644);
  await rename(partial, path);
}

/**
 * Removes `exec-*` directories (and `install-*` build scratch) under `workRoot` that are leftovers
 * of a worker that died before disposing of them: at once when the name says which process made it
 * (`exec-<pid>-XXXXXX`) and that process is gone, else once untouched for `olderThanMs`. A root
 * driver's home is a tmpfs holding RAM, so it must not wait a day. Their home tmpfs is unmounted
 * first, given `umountBin`. Best effort; returns how many were removed.
 */
export async function sweepStaleExecutions(workRoot: string, olderThanMs: number, now = Date.now(), umountBin?: string): Promise<number> {
  const names = await readdir(workRoot).catch(() => [] as string[]);
  let removed = 0;
  for (const name of names) {
    // exec-*: an execution (its home/ is a tmpfs as root); install-*: a confined build's scratch tmpfs.
    const kind = /^(exec|install)-/.exec(name)?.[1];
    if (!kind) continue;
    const path = join(workRoot, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isDirectory()) continue;
    const owner = /^(?:exec|install)-(\d+)-/.exec(name)?.[1];
    const ownerGone = owner !== undefined && Number(owner) !== process.pid && !(await pathExists(`/proc/${owner}`));
    if (!ownerGone && now - info.mtimeMs < olderThanMs) continue;
    // A sandbox whose worker died while bubblewrap was still setting it up can miss its
    // parent-death signal and linger (it would hold its uid and home): its command line names
    // this directory, so it is found and killed before the directory goes.
    await killProcessesNaming(path);
    // Detach the tmpfs first, or rm stops at the mount point.
    if (umountBin) await runProbe(umountBin, ['--lazy', kind === 'exec' ? join(path, 'home') : path]);
    await rm(path, { recursive: true, force: true }).then(
      () => (removed += 1),
      () => undefined,
    );
  }
  return removed;
}

/** SIGKILLs every process whose command line contains `path/` and waits (bounded) until they are gone. */
export async function killProcessesNaming(path: string): Promise<number> {
  const needle = `${path}/`;
  let killed = 0;
  // Rounds until two scans, a moment apart, find none: a process can fork between a scan and its
  // kill (bubblewrap clones the sandbox's init; a chain's shell runs `mount`), and its child names
  // the path too. One empty scan is not enough: a dying bubblewrap's command line already reads
  // empty while the clone it was making appears a moment later, blocked for good waiting for the
  // uid map its dead parent never writes (no parent-death signal set yet, so nothing else ends it).
  for (let round = 0, empty = 0; round < KILL_ROUNDS; round++) {
    const found: number[] = [];
    for (const entry of await readdir('/proc').catch(() => [] as string[])) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
      const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
      if (cmdline.split('\0').some((arg) => arg.startsWith(needle)) && !(await isZombie(Number(entry)))) found.push(Number(entry));
    }
    if (found.length === 0) {
      if (++empty === 2) break;
      await new Promise((resolve) => setTimeout(resolve, RESCAN_AFTER_MS));
      continue;
    }
    empty = 0;
    for (const pid of found) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile, or not ours to kill
      }
    }
    killed += found.length;
    for (let i = 0; i < 50; i++) {
      const alive = await Promise.all(found.map(async (pid) => !(await isZombie(pid))));
      if (!alive.some(Boolean)) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  return killed;
}

/** Scan-and-kill rounds of killProcessesNaming at most. */
const KILL_ROUNDS = 10;
/** How long killProcessesNaming waits before the scan that confirms an empty one. */
const RESCAN_AFTER_MS = 50;

/** Gone, or a zombie (dead, waiting to be reaped): nothing it can still do. */
async function isZombie(pid: number): Promise<boolean> {
  return readFile(`/proc/${pid}/stat`, 'utf8').then(
    (stat) => /^\S+ \(.*\) [ZX]/s.test(stat),
    () => true,
  );
}

async function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** The real path of an interpreter: absolute paths as given, bare names looked up on `searchPath`. */
export async function resolveExecutable(bin: string, searchPath: string): Promise<string | undefined> {
  const candidates = bin.includes('/') ? [resolve(bin)] : searchPath.split(':').filter(Boolean).map((dir) => join(dir, bin));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return await realpath(candidate);
    } catch {
      // next candidate
    }
  }
  return undefined;
}

/**
 * Whether `uid`/`gid` (with no supplementary groups) may reach `path`: search permission on every
 * ancestor and read (or only search) permission on the path itself. Needed because bwrap running as a dedicated
 * sandbox uid opens every bind source with that uid's rights (an nvm node under /root is not).
 */
export async function isReachableBy(path: string, uid: number, gid: number, need: 'read' | 'search' = 'read'): Promise<boolean> {
  const target = resolve(path);
  const ancestors: string[] = [];
  for (let dir = dirname(target); ; dir = dirname(dir)) {
    ancestors.push(dir);
    if (dir === '/') break;
  }
  for (const dir of ancestors) {
    if (!(await permits(dir, uid, gid, 0o1))) return false;
  }
  return permits(target, uid, gid, need === 'read' ? 0o4 : 0o1);
}

async function permits(path: string, uid: number, gid: number, bit: number): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  if (!info) return false;
  const mode = info.mode;
  if (info.uid === uid) return (mode & (bit << 6)) !== 0;
  if (info.gid === gid) return (mode & (bit << 3)) !== 0;
  return (mode & bit) !== 0;
}
