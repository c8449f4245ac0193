import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { access, mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { SandboxLogger } from '../driver';

/**
 * Per-execution cgroups (v1: one group each in the `memory`, `pids` and `cpu` hierarchies), so
 * one memory, process and CPU budget covers everything an execution starts: every child, thread
 * and tmpfs page it writes, not each process on its own as rlimits do.
 *
 * Only root can create them (as the kubelet does). Groups live under the worker's own cgroup in
 * each hierarchy (`<own>/podflow/worker-<pid>/exec-*`), so a worker in a container stays inside
 * its limits, and workers sharing a host never touch each other's groups.
 * cgroup v2 is not handled yet: such hosts keep the rlimits (README "Process sandbox limits").
 */

/** The budget of one execution. */
export interface CgroupLimits {
  memoryBytes: number;
  maxProcesses: number;
  /** CPU in thousandths of a core (CFS quota per 100 ms period). */
  cpuMillis: number;
}

/** One execution's groups: processes join them through `procsFiles` before the code starts. */
export interface ExecutionCgroup {
  /** `cgroup.procs` files the launcher writes its pid into (one per hierarchy). */
  readonly procsFiles: string[];
  /** Whether the kernel's OOM killer killed a process of this group. */
  oomKilled(): Promise<boolean>;
  /** Highest memory use of the group, in bytes. */
  peakMemoryBytes(): Promise<number | undefined>;
  /** Kills what is left in the group and removes it. Idempotent. */
  remove(): Promise<void>;
}

const CFS_PERIOD_US = 100_000;
const GROUP_PARENT = 'podflow';
const REMOVE_ATTEMPTS = 50;

interface Hierarchies {
  memory: string;
  pids: string;
  cpu: string;
}

/** Creates execution groups; `detect()` returns one only where this process may. */
export class CgroupManager {
  private constructor(
    private readonly parents: Hierarchies,
    /** memory.memsw.* exists: swap is counted in (and capped by) the memory budget. */
    private readonly swapAccounting: boolean,
  ) {}

  /**
   * A manager when this host has cgroup v1 memory, pids and cpu hierarchies that this process can
   * create groups in; otherwise `undefined` and the reason is logged once.
   */
  static async detect(logger?: SandboxLogger, root = '/sys/fs/cgroup'): Promise<CgroupManager | undefined> {
    const unified = await exists(join(root, 'cgroup.controllers'));
    if (unified) {
      logger?.warn({ root }, 'cgroup v2 host: per-execution cgroups are not supported yet; memory and processes are limited per process (rlimits) only');
      return undefined;
    }
    // Files every group of the controller has, the root group included (pids.max is not in the root).
    const controls = { memory: 'memory.limit_in_bytes', pids: 'cgroup.procs', cpu: 'cpu.cfs_period_us' } as const;
    const own = await ownCgroups();
    const parents = {} as Hierarchies;
    for (const controller of Object.keys(controls) as Array<keyof Hierarchies>) {
      const mount = join(root, controller);
      if (!(await exists(join(mount, controls[controller])))) {
        logger?.warn({ controller, mount }, 'no cgroup v1 hierarchy for this controller: per-execution cgroups are off; limits are per process (rlimits)');
        return undefined;
      }
      // One parent per worker process: sweeping another worker's groups could race its launches.
      parents[controller] = join(mount, own.get(controller) ?? '/', GROUP_PARENT, `worker-${process.pid}`);
    }
    try {
      for (const parent of Object.values(parents)) await mkdir(parent, { recursive: true });
    } catch (error) {
      logger?.warn({ error: (error as Error).message }, 'cannot create cgroups (the worker is not root?): per-execution memory, process and CPU budgets are off; limits are per process (rlimits)');
      return undefined;
    }
    // Charges of children count in the parent (always on in recent kernels; needed on old ones).
    await writeFile(join(parents.memory, 'memory.use_hierarchy'), '1').catch(() => undefined);
    return new CgroupManager(parents, await exists(join(parents.memory, 'memory.memsw.limit_in_bytes')));
  }

  /** Creates the groups of one execution with `limits` applied. */
  async create(limits: CgroupLimits): Promise<ExecutionCgroup> {
    const name = `exec-${randomBytes(8).toString('hex')}`;
    const dirs: Hierarchies = { memory: join(this.parents.memory, name), pids: join(this.parents.pids, name), cpu: join(this.parents.cpu, name) };
    const group = new V1ExecutionCgroup(dirs);
    // Synchronous: cgroupfs answers in microseconds, while each fs/promises call is three trips
    // through libuv's thread pool (open, write, close), ~0.4 ms of the worker's CPU per execution.
    try {
      for (const dir of Object.values(dirs)) mkdirSync(dir);
      writeFileSync(join(dirs.memory, 'memory.limit_in_bytes'), String(limits.memoryBytes));
      // memsw is memory + swap: equal to the memory limit, the group cannot swap its way past it.
      if (this.swapAccounting) writeFileSync(join(dirs.memory, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
      writeFileSync(join(dirs.pids, 'pids.max'), String(limits.maxProcesses));
      writeFileSync(join(dirs.cpu, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
      writeFileSync(join(dirs.cpu, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round((limits.cpuMillis / 1000) * CFS_PERIOD_US))));
    } catch (error) {
      await group.remove();
      throw error;
    }
    return group;
  }

  /**
   * Removes what dead workers left: their `worker-<pid>` parents (the groups in them are empty:
   * sandboxes die with their worker) and this worker's own empty `exec-*` groups whose removal
   * was deferred. Best effort; returns how many groups were removed.
   */
  async sweep(): Promise<number> {
    let removed = 0;
    const rmdirCounted = (path: string): Promise<void> => rmdir(path).then(() => void (removed += 1), () => undefined);
    for (const mine of Object.values(this.parents)) {
      const shared = dirname(mine);
      for (const name of await readdir(shared).catch(() => [] as string[])) {
        const owner = /^worker-(\d+)$/.exec(name)?.[1];
        const isMine = join(shared, name) === mine;
        if (!isMine && (owner === undefined || (await exists(`/proc/${owner}`)))) continue;
        for (const group of (await readdir(join(shared, name)).catch(() => [] as string[])).filter((n) => n.startsWith('exec-'))) {
          const procs = await readFile(join(shared, name, group, 'cgroup.procs'), 'utf8').catch(() => 'x');
          if (procs.trim() === '') await rmdirCounted(join(shared, name, group));
        }
        if (!isMine) await rmdirCounted(join(shared, name));
      }
    }
    return removed;
  }
}

class V1ExecutionCgroup implements ExecutionCgroup {
  readonly procsFiles: string[];
  private removed?: Promise<void>;

  constructor(private readonly dirs: Hierarchies) {
    this.procsFiles = Object.values(dirs).map((dir) => join(dir, 'cgroup.procs'));
  }

  async oomKilled(): Promise<boolean> {
    const control = await readFile(join(this.dirs.memory, 'memory.oom_control'), 'utf8').catch(() => '');
    const kills = /^oom_kill (\d+)$/m.exec(control);
    if (kills) return Number(kills[1]) > 0;
    // Kernels before 4.13 have no oom_kill counter: a hit limit is the best evidence left.
    const failcnt = await readFile(join(this.dirs.memory, 'memory.failcnt'), 'utf8').catch(() => '0');
    return Number(failcnt.trim()) > 0;
  }

  async peakMemoryBytes(): Promise<number | undefined> {
    // Read synchronously: a cgroupfs file is answered by the kernel in microseconds, while an
    // fs/promises read is several trips through libuv's thread pool, queued behind whatever file
    // work the worker has going (a warm sandbox being prepared): ~1-3 ms added to every result.
    try {
      return Number(readFileSync(join(this.dirs.memory, 'memory.max_usage_in_bytes'), 'utf8').trim());
    } catch {
      return undefined;
    }
  }

  remove(): Promise<void> {
    this.removed ??= this.removeAll();
    return this.removed;
  }

  private async removeAll(): Promise<void> {
    for (const dir of Object.values(this.dirs)) await removeGroup(dir);
  }
}

/** rmdir fails while a process is in the group: kill the stragglers and try again. */
async function removeGroup(dir: string): Promise<void> {
  for (let attempt = 0; attempt < REMOVE_ATTEMPTS; attempt++) {
    try {
      rmdirSync(dir); // cgroupfs: microseconds (see create)
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY') throw error;
    }
    const procs = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
    for (const pid of procs.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await new Promise((wake) => setTimeout(wake, 20));
  }
  throw new Error(`cgroup ${dir} still has processes after ${REMOVE_ATTEMPTS} kill rounds`);
}

/** This process's group in each v1 hierarchy (`/proc/self/cgroup`: `id:controllers:path`). */
async function ownCgroups(): Promise<Map<string, string>> {
  const text = await readFile('/proc/self/cgroup', 'utf8').catch(() => '');
  const groups = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [, controllers, path] = line.split(':');
    if (!controllers || path === undefined) continue;
    for (const controller of controllers.split(',')) groups.set(controller, path);
  }
  return groups;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

