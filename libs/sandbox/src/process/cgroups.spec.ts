import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CgroupManager } from './cgroups';

// Real cgroup v1 groups: needs root on a v1 host (these machines, and CI).
const rootOnV1 = process.getuid?.() === 0 && existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes') ? describe : describe.skip;

rootOnV1('CgroupManager (cgroup v1, root)', () => {
  it('creates one group per execution under this worker, with the limits written, and removes it', async () => {
    const manager = await CgroupManager.detect();
    expect(manager).toBeDefined();
    const group = await manager!.create({ memoryBytes: 64 * 1024 * 1024, maxProcesses: 7, cpuMillis: 250 });
    const memory = dirname(group.procsFiles.find((f) => f.includes('/memory/'))!);
    expect(memory).toMatch(new RegExp(`/podflow/worker-${process.pid}/exec-[0-9a-f]{16}$`));
    expect((await readFile(`${memory}/memory.limit_in_bytes`, 'utf8')).trim()).toBe(String(64 * 1024 * 1024));
    const pids = dirname(group.procsFiles.find((f) => f.includes('/pids/'))!);
    expect((await readFile(`${pids}/pids.max`, 'utf8')).trim()).toBe('7');
    const cpu = dirname(group.procsFiles.find((f) => f.includes('/cpu/'))!);
    expect((await readFile(`${cpu}/cpu.cfs_quota_us`, 'utf8')).trim()).toBe('25000');
    expect(await group.oomKilled()).toBe(false);
    await group.remove();
    expect(existsSync(memory)).toBe(false);
  });

  it("sweeps a dead worker's groups, never a live worker's", async () => {
    const manager = (await CgroupManager.detect())!;
    const probe = await manager.create({ memoryBytes: 64 * 1024 * 1024, maxProcesses: 7, cpuMillis: 250 });
    const shared = dirname(dirname(dirname(probe.procsFiles.find((f) => f.includes('/memory/'))!)));
    await probe.remove();
    const dead = spawnSync('true').pid!;
    const live = process.ppid;
    for (const worker of [dead, live]) await mkdir(`${shared}/worker-${worker}/exec-0123456789abcdef`, { recursive: true });
    await manager.sweep();
    expect(existsSync(`${shared}/worker-${dead}`)).toBe(false);
    expect(existsSync(`${shared}/worker-${live}/exec-0123456789abcdef`)).toBe(true);
    spawnSync('rmdir', [`${shared}/worker-${live}/exec-0123456789abcdef`, `${shared}/worker-${live}`]);
  });
});
