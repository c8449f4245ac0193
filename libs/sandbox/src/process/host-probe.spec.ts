import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isReachableBy, killProcessesNaming, resolveExecutable, runProbe, sweepStaleExecutions, writeSyntheticEtc } from './host-probe';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'podflow-probe-spec-'));
});
afterEach(() => rm(root, { recursive: true, force: true }));

describe('host probes', () => {
  it('reports whether a command exits 0, and why not', async () => {
    expect(await runProbe('true', [])).toEqual({ ok: true, detail: '' });
    expect((await runProbe('/nonexistent/bwrap', [])).detail).toContain('could not be started (ENOENT)');
    expect((await runProbe('sh', ['-c', 'echo nope >&2; exit 3'])).detail).toMatch(/exited with 3: nope$/);
  });

  it('writes synthetic account and hosts files', async () => {
    const files = await writeSyntheticEtc(join(root, 'etc'));
    expect(await readFile(files.passwd, 'utf8')).toBe('user:x:1000:1000:podflow sandbox:/home/user:/usr/sbin/nologin\n');
    expect(await readFile(files.group, 'utf8')).toBe('user:x:1000:\n');
    expect(await readFile(files.hosts, 'utf8')).toContain('127.0.0.1 localhost');
    // A second driver on the same work root rewrites the same content in place.
    await writeSyntheticEtc(join(root, 'etc'));
    expect(await readFile(files.group, 'utf8')).toBe('user:x:1000:\n');
  });

  it('resolves interpreters to their real path, bare names on the sandbox PATH', async () => {
    expect(await resolveExecutable('sh', '/usr/bin:/bin')).toMatch(/^\/usr\/bin\/(dash|bash|sh)$/);
    expect(await resolveExecutable('/nonexistent/python3', '/usr/bin')).toBeUndefined();
    expect(await resolveExecutable('no-such-binary-podflow', '/usr/bin:/bin')).toBeUndefined();
  });

  it('checks what another uid may reach through the permission bits', async () => {
    const dir = join(root, 'a', 'b');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'file'), 'x');
    await chmod(root, 0o755);
    await chmod(join(root, 'a'), 0o711);
    await chmod(join(dir, 'file'), 0o644);
    const stranger = 1_900_000_123;
    expect(await isReachableBy(join(dir, 'file'), stranger, stranger)).toBe(true);
    expect(await isReachableBy(join(root, 'a'), stranger, stranger)).toBe(false);
    expect(await isReachableBy(join(root, 'a'), stranger, stranger, 'search')).toBe(true);
    await chmod(join(root, 'a'), 0o700);
    expect(await isReachableBy(join(dir, 'file'), stranger, stranger)).toBe(false);
    expect(await isReachableBy(join(root, 'missing'), stranger, stranger)).toBe(false);
  });

  it('sweeps only stale execution directories', async () => {
    const stale = join(root, 'exec-old');
    const fresh = join(root, 'exec-new');
    const other = join(root, 'etc');
    for (const dir of [stale, fresh, other]) await mkdir(dir);
    const dayAgo = new Date(Date.now() - 25 * 60 * 60 * 1000);
    await utimes(stale, dayAgo, dayAgo);
    await utimes(other, dayAgo, dayAgo);
    expect(await sweepStaleExecutions(root, 24 * 60 * 60 * 1000)).toBe(1);
    expect([existsSync(stale), existsSync(fresh), existsSync(other)]).toEqual([false, true, true]);
  });

  it('sweeps at once the fresh directories of a worker that is gone, never a live one\'s', async () => {
    const gone = spawnSync('true').pid!;
    const orphan = join(root, `exec-${gone}-abc123`);
    const mine = join(root, `exec-${process.pid}-def456`);
    const parent = join(root, `exec-${process.ppid}-ghi789`);
    for (const dir of [orphan, mine, parent]) await mkdir(dir);
    expect(await sweepStaleExecutions(root, 24 * 60 * 60 * 1000)).toBe(1);
    expect([existsSync(orphan), existsSync(mine), existsSync(parent)]).toEqual([false, true, true]);
  });
});

describe('killProcessesNaming', () => {
  it('kills the processes whose arguments name a path inside the directory, and only those', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'podflow-kill-naming-'));
    const keep = `${dir}-other`;
    const inside = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', join(dir, 'home')], { stdio: 'ignore' });
    const beside = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', join(keep, 'home')], { stdio: 'ignore' });
    const exited = new Promise((resolve) => inside.once('exit', (_code, signal) => resolve(signal)));
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await killProcessesNaming(dir)).toBe(1);
      expect(await exited).toBe('SIGKILL');
      expect(beside.exitCode).toBeNull();
      expect(beside.signalCode).toBeNull();
    } finally {
      inside.kill('SIGKILL');
      beside.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
