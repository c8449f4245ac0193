import { spawn } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CgroupLimits, CgroupManager, ExecutionCgroup } from './cgroups';
import type { EgressNamespace, EgressNetworks } from './egress-network';
import type { HomeTmpfs } from './launch';
import type { UidPool } from './uid-pool';
import type { UnmountServer } from './unmount-server';

/**
 * The host-side resources of one process execution, set up before its sandbox starts:
 * `<workRoot>/exec-XXXX/` with `home/` (the code's /home/user) and `tmp/`, a dedicated uid, the
 * execution's cgroups, and its egress network namespace when granted. The size-limited tmpfs of
 * its home is mounted by the sandbox's launch chain (`homeTmpfs`, launch.ts) and unmounted here. `release()` frees what only the running sandbox needs (uid, cgroups, network) once it
 * is dead; `dispose()` removes the directory after the files were read.
 */
export interface ExecutionSandbox {
  execDir: string;
  homeDir: string;
  uid?: number;
  cgroup?: ExecutionCgroup;
  egress?: EgressNamespace;
  /** Whether /home/user is a tmpfs of the execution's own (its size is a hard quota). */
  homeQuota: boolean;
  /** The tmpfs the launch chain mounts at `homeDir` (when `homeQuota`). */
  homeTmpfs?: HomeTmpfs;
  release(): Promise<void>;
  dispose(): Promise<void>;
}

export interface ExecutionSandboxNeeds {
  cgroupLimits: CgroupLimits;
  /** Size of the /home/user tmpfs, in bytes. */
  homeSizeBytes: number;
  network: boolean;
}

/** What the host offers (decided once at start-up, `isolation-plan.ts`). */
export interface ExecutionHost {
  workRoot: string;
  uids?: UidPool;
  cgroups?: CgroupManager;
  egress?: EgressNetworks;
  /** `mount` of util-linux, when the driver is root: homes become sized tmpfs mounts (mounted by the launch chain). */
  mountBin?: string;
  /** Unmounts them again (given with `mountBin`). */
  unmounter?: HomeUnmounter;
}

/** Sets everything up, or undoes what was done and throws with the failing step's words. */
export async function prepareExecutionSandbox(host: ExecutionHost, needs: ExecutionSandboxNeeds): Promise<ExecutionSandbox> {
  await mkdir(host.workRoot, { recursive: true, mode: 0o711 });
  // The pid in the name lets the next driver on this work root sweep it at once if this worker dies.
  const execDir = await mkdtemp(join(host.workRoot, `exec-${process.pid}-`));
  const homeDir = join(execDir, 'home');
  const undo: Array<() => Promise<unknown>> = [() => rm(execDir, { recursive: true, force: true })];
  let uid: number | undefined;
  let cgroup: ExecutionCgroup | undefined;
  let egress: EgressNamespace | undefined;
  let homeQuota = false;
  try {
    await mkdir(homeDir, { mode: 0o700 });
    await mkdir(join(execDir, 'tmp'), { mode: 0o700 });
    if (host.uids) {
      const acquired = host.uids.acquire();
      uid = acquired;
      undo.push(async () => host.uids!.release(acquired));
      // bwrap runs as `uid`: it must traverse execDir and own home/.
      await chmod(execDir, 0o711);
    }
    // Mounted by the launch chain, owned by the uid; without it the directory itself is the home.
    homeQuota = host.mountBin !== undefined && host.unmounter !== undefined && uid !== undefined;
    if (uid !== undefined && !homeQuota) await chown(homeDir, uid, uid);
    if (host.cgroups) {
      const created = await host.cgroups.create(needs.cgroupLimits);
      cgroup = created;
      undo.unshift(() => created.remove());
    }
    if (needs.network) {
      if (!host.egress) throw new EgressUnavailableError();
      const opened = await host.egress.open();
      egress = opened;
      undo.unshift(() => opened.close());
    }
  } catch (error) {
    await undoAll(undo);
    throw error;
  }
  let released: Promise<void> | undefined;
  let disposed: Promise<void> | undefined;
  const release = (): Promise<void> =>
    (released ??= (async () => {
      await egress?.close();
      // Off the result's path: the group is empty (the pid namespace is gone), and removing a
      // memory cgroup waits for the kernel to reparent its charges. One that cannot be removed
      // now is swept at the next start.
      void cgroup?.remove().catch(() => undefined);
      if (uid !== undefined) host.uids?.release(uid);
    })());
  return {
    execDir,
    homeDir,
    uid,
    cgroup,
    egress,
    homeQuota,
    ...(homeQuota ? { homeTmpfs: { dir: homeDir, sizeBytes: needs.homeSizeBytes } } : {}),
    release,
    dispose: () =>
      (disposed ??= (async () => {
        await release();
        // A sandbox that never got as far as its launch chain's mount has nothing to unmount.
        if (homeQuota && (await isMountPoint(homeDir))) await host.unmounter!.unmount(homeDir);
        await rm(execDir, { recursive: true, force: true });
      })()),
  };
}

/** A node asked for egress on a host that cannot give a sandbox its own network. */
export class EgressUnavailableError extends Error {
  constructor() {
    super(
      'this execution was granted network egress, but this worker cannot give sandboxes their own network: it must run as root ' +
        'with slirp4netns, iproute2 and util-linux installed (see the worker log at start-up); the sandbox was not started',
    );
  }
}

async function undoAll(steps: Array<() => Promise<unknown>>): Promise<void> {
  for (const step of steps) await step().catch(() => undefined);
}

/**
 * Detaches home tmpfs mounts in batches: what gathered within `windowMs` goes out together. Through
 * the unmount server (`unmount-server.ts`) when there is one: a line per home on a pipe. Else, or
 * when the server cannot be reached, one `umount --lazy a b c…` per batch: a spawn from the worker
 * forks the whole worker (its page tables: ~3-4 ms of its event loop at 130 MiB), which busy
 * workers would otherwise pay per execution. The window only delays clean-up, never a result.
 * Best effort, like any clean-up: a home still mounted keeps its directory (rm stops at the mount
 * point) until the next sweep.
 */
export class HomeUnmounter {
  private pending: Array<{ dir: string; done: () => void }> = [];
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly umountBin: string,
    private readonly windowMs = 20,
    private readonly maxBatch = 64,
    private readonly server?: UnmountServer,
  ) {}

  unmount(dir: string): Promise<void> {
    return new Promise((resolve) => {
      this.pending.push({ dir, done: resolve });
      if (this.pending.length >= this.maxBatch) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.windowMs);
    });
  }

  /** Ends the unmount server, after what is pending went out. */
  close(): void {
    this.flush();
    this.server?.close();
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending.splice(0);
    if (batch.length === 0) return;
    const dirs = batch.map((entry) => entry.dir);
    const umount = (which: string[]) => (which.length > 0 ? run(this.umountBin, ['--lazy', ...which]) : Promise.resolve());
    // What the server could not detach (it answered an error) gets one more try with umount.
    const detached = this.server?.detach(dirs).then(
      (answers) => umount(dirs.filter((_, index) => answers[index] !== '0')),
      () => umount(dirs),
    );
    void (detached ?? umount(dirs))
      .catch(() => undefined)
      .finally(() => {
        for (const entry of batch) entry.done();
      });
  }
}

/** Whether `dir` is the root of a mount: it sits on another device than its parent. */
async function isMountPoint(dir: string): Promise<boolean> {
  try {
    const [own, parent] = await Promise.all([stat(dir), stat(join(dir, '..'))]);
    return own.dev !== parent.dev;
  } catch {
    return false;
  }
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    // An empty environment: copying the worker's into every spawn costs more than the command needs.
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env: {} });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < 2048) stderr += chunk.toString('utf8');
    });
    child.once('error', (error) => reject(new Error(`${command} could not start: ${error.message}`)));
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr.trim()}`))));
  });
}
