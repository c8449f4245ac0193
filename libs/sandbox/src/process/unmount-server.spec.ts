import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILT_LAUNCHER } from './launch';
import { UnmountServer } from './unmount-server';

// The real podflow-launch --unmount-server, as root (it detaches real tmpfs mounts).
const asRoot = existsSync(BUILT_LAUNCHER) && process.getuid?.() === 0 ? it : it.skip;

const mounted = async (dir: string) => (await readFile('/proc/mounts', 'utf8')).split('\n').some((line) => line.split(' ')[1] === dir);

describe('UnmountServer', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'podflow-unmount-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  asRoot('detaches homes under its work root, answers one line per path in order, and touches nothing else', async () => {
    const homes = [join(root, 'exec-1', 'home'), join(root, 'exec-2', 'home')];
    const outside = await mkdtemp(join(tmpdir(), 'podflow-unmount-outside-'));
    for (const dir of [...homes, outside]) {
      await mkdir(dir, { recursive: true });
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'podflow-home', dir]);
    }
    const server = new UnmountServer(BUILT_LAUNCHER, root);
    try {
      const [first, second] = await Promise.all([server.detach([homes[0]!]), server.detach([homes[1]!, join(root, 'exec-3', 'home'), outside, `${root}/exec-1/../../x`])]);
      expect(first).toEqual(['0']);
      expect(second).toEqual(['0', '22 not a canonical path (a symlink, or gone)', `22 not a path under ${root}`, `22 not a path under ${root}`]);
      for (const dir of homes) expect(await mounted(dir)).toBe(false);
      expect(await mounted(outside)).toBe(true);
    } finally {
      server.close();
      execFileSync('umount', ['--lazy', outside]);
      await rm(outside, { recursive: true, force: true });
    }
  });

  asRoot('never follows a symlink: a home path through a link is refused, and the mount it leads to stays', async () => {
    const elsewhere = await mkdtemp(join(tmpdir(), 'podflow-unmount-elsewhere-'));
    await mkdir(join(elsewhere, 'home'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'podflow-home', join(elsewhere, 'home')]);
    const server = new UnmountServer(BUILT_LAUNCHER, root);
    try {
      await symlink(elsewhere, join(root, 'exec-9'));
      await mkdir(join(root, 'exec-8'));
      await symlink(join(elsewhere, 'home'), join(root, 'exec-8', 'home'));
      expect(await server.detach([join(root, 'exec-9', 'home'), join(root, 'exec-8', 'home')])).toEqual(['22 not a canonical path (a symlink, or gone)', '22 not a canonical path (a symlink, or gone)']);
      expect(await mounted(join(elsewhere, 'home'))).toBe(true);
    } finally {
      server.close();
      execFileSync('umount', ['--lazy', join(elsewhere, 'home')]);
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  asRoot('is started again after it died, and refuses once closed', async () => {
    const server = new UnmountServer(BUILT_LAUNCHER, root);
    const pids = () => execFileSync('pgrep', ['-f', `unmount-server ${root}`], { encoding: 'utf8' }).trim().split('\n');
    await mkdir(join(root, 'a'));
    expect(await server.detach([join(root, 'a')])).toEqual(['22 Invalid argument']);
    const [pid] = pids();
    process.kill(Number(pid), 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await server.detach([join(root, 'a')])).toEqual(['22 Invalid argument']);
    expect(pids()).not.toContain(pid);
    server.close();
    await expect(server.detach([join(root, 'c')])).rejects.toThrow(/closed/);
  });

  it('does not start for nothing, and rejects a path it could not frame', async () => {
    const server = new UnmountServer('/nonexistent/podflow-launch', root);
    await expect(server.detach([])).resolves.toEqual([]);
    await expect(server.detach(['/a\nb'])).rejects.toThrow(/line break/);
    await expect(server.detach(['/a\0b'])).rejects.toThrow(/NUL byte/);
    await expect(server.detach([join(root, 'a')])).rejects.toThrow(/could not start/);
  });
});
