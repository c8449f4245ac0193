import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILT_LAUNCHER, buildLaunch, homeTmpfsOptions, LAUNCH_SETUP_FAILED_EXIT } from './launch';

const binaries = { sh: '/bin/sh', nsenter: '/usr/bin/nsenter', setpriv: '/usr/bin/setpriv' };
const command = ['/usr/bin/prlimit', '--as=1', '--', '/usr/bin/bwrap', '--', 'python3'];

describe('buildLaunch', () => {
  it('lets spawn drop to the sandbox uid when nothing needs root first', () => {
    expect(buildLaunch({ command, uid: 1_900_000_001, binaries })).toEqual({ argv: command, spawnIds: { uid: 1_900_000_001, gid: 1_900_000_001 } });
    expect(buildLaunch({ command, binaries })).toEqual({ argv: command });
  });

  it('joins the cgroups, enters the network namespace, then drops to the uid, in that order, as root', () => {
    const plan = buildLaunch({ command, uid: 7, cgroupProcsFiles: ['/cg/memory/x/cgroup.procs', '/cg/pids/x/cgroup.procs'], netnsPath: '/proc/42/ns/net', binaries });
    expect(plan.spawnIds).toBeUndefined();
    const [sh, dashC, script, name, ...rest] = plan.argv;
    expect([sh, dashC, name]).toEqual(['/bin/sh', '-c', 'podflow-launch']);
    expect(script).toContain(`exit ${LAUNCH_SETUP_FAILED_EXIT}`);
    expect(rest).toEqual([
      '/cg/memory/x/cgroup.procs',
      '/cg/pids/x/cgroup.procs',
      '--',
      '/usr/bin/nsenter',
      '--net=/proc/42/ns/net',
      '--',
      '/usr/bin/setpriv',
      '--reuid=7',
      '--regid=7',
      '--clear-groups',
      '--',
      ...command,
    ]);
  });

  it('mounts the home tmpfs first, owned by the sandbox uid, then joins the cgroups', () => {
    const plan = buildLaunch({ command, uid: 7, homeTmpfs: { dir: '/work/exec-1/home', sizeBytes: 1024 }, cgroupProcsFiles: ['/cg/pids/x/cgroup.procs'], binaries: { ...binaries, mount: '/usr/bin/mount' } });
    const [, , script, name, ...rest] = plan.argv;
    expect(name).toBe('podflow-launch');
    expect(script).toContain('cannot mount the home tmpfs');
    expect(rest.slice(0, 6)).toEqual(['--home', '/usr/bin/mount', 'size=1024,mode=0700,uid=7,gid=7,nosuid,nodev', '/work/exec-1/home', '/cg/pids/x/cgroup.procs', '--']);
    expect(homeTmpfsOptions(1024, 7)).toBe(rest[2]);
    // A home alone needs the root link too.
    expect(buildLaunch({ command, uid: 7, homeTmpfs: { dir: '/h', sizeBytes: 1 }, binaries: { ...binaries, mount: '/usr/bin/mount' } }).argv.slice(4, 9)).toEqual(['--home', '/usr/bin/mount', 'size=1,mode=0700,uid=7,gid=7,nosuid,nodev', '/h', '--']);
    expect(() => buildLaunch({ command, homeTmpfs: { dir: '/h', sizeBytes: 1 }, binaries })).toThrow(/needs the sandbox uid/);
    expect(() => buildLaunch({ command, uid: 7, homeTmpfs: { dir: '/h', sizeBytes: 1 }, binaries })).toThrow(/needs the mount binary/);
  });

  it('puts the rlimits last, as prlimit flags, with or without the root link', () => {
    const bare = ['/usr/bin/bwrap', '--', 'python3'];
    const withPrlimit = { ...binaries, prlimit: '/usr/bin/prlimit' };
    expect(buildLaunch({ command: bare, rlimits: ['--as=1'], uid: 7, binaries: withPrlimit })).toEqual({ argv: ['/usr/bin/prlimit', '--as=1', '--', ...bare], spawnIds: { uid: 7, gid: 7 } });
    expect(buildLaunch({ command: bare, rlimits: ['--as=1'], uid: 7, netnsPath: '/proc/1/ns/net', binaries: withPrlimit }).argv.slice(-8)).toEqual(['--clear-groups', '--', '/usr/bin/prlimit', '--as=1', '--', ...bare]);
    expect(() => buildLaunch({ command: bare, rlimits: ['--as=1'], binaries })).toThrow(/needs the prlimit binary/);
  });

  it('with podflow-launch, does everything the root link, nsenter, setpriv and prlimit did in one exec', () => {
    const bare = ['/usr/bin/bwrap', '--', 'python3'];
    const plan = buildLaunch({
      command: bare,
      rlimits: ['--as=1', '--nproc=2'],
      uid: 7,
      homeTmpfs: { dir: '/work/exec-1/home', sizeBytes: 1024 },
      cgroupProcsFiles: ['/cg/memory/x/cgroup.procs', '/cg/pids/x/cgroup.procs'],
      netnsPath: '/proc/42/ns/net',
      binaries: { launcher: '/opt/podflow/podflow-launch' },
    });
    expect(plan).toEqual({
      argv: [
        '/opt/podflow/podflow-launch',
        '--home',
        '/work/exec-1/home',
        '1024',
        '--cgroup',
        '/cg/memory/x/cgroup.procs',
        '--cgroup',
        '/cg/pids/x/cgroup.procs',
        '--netns',
        '/proc/42/ns/net',
        '--uid',
        '7',
        '--as=1',
        '--nproc=2',
        '--',
        ...bare,
      ],
    });
    // Nothing that needs root: spawn drops the uid and prlimit sets the rlimits, as without it.
    expect(buildLaunch({ command: bare, rlimits: ['--as=1'], uid: 7, binaries: { launcher: '/l', prlimit: '/p' } })).toEqual({ argv: ['/p', '--as=1', '--', ...bare], spawnIds: { uid: 7, gid: 7 } });
    // Without prlimit the launcher applies them (and drops the uid) rather than the launch failing.
    expect(buildLaunch({ command: bare, rlimits: ['--as=1'], uid: 7, binaries: { launcher: '/l' } })).toEqual({ argv: ['/l', '--uid', '7', '--as=1', '--', ...bare] });
  });

  it('runs the root link for real: a mount that fails ends the chain with its own exit code and message', async () => {
    const { execFileSync } = await import('node:child_process');
    const plan = buildLaunch({ command: ['/bin/echo', 'never'], uid: 7, homeTmpfs: { dir: '/nonexistent/home', sizeBytes: 1 }, binaries: { ...binaries, mount: '/bin/false' } });
    let failure: { status?: number; stderr?: string; stdout?: string } = {};
    try {
      execFileSync(plan.argv[0]!, plan.argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      failure = error as typeof failure;
    }
    expect(failure.status).toBe(LAUNCH_SETUP_FAILED_EXIT);
    expect(failure.stderr).toContain('podflow-launch: cannot mount the home tmpfs at /nonexistent/home');
    expect(failure.stdout).toBe('');
  });

  it('runs the join script for real: the pid it writes is the one that execs the command', async () => {
    const { mkdtemp, readFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { execFileSync } = await import('node:child_process');
    const dir = await mkdtemp(join(tmpdir(), 'launch-spec-'));
    try {
      const procs = join(dir, 'cgroup.procs');
      const plan = buildLaunch({ command: ['/bin/sh', '-c', 'echo $$'], cgroupProcsFiles: [procs], binaries });
      const printed = execFileSync(plan.argv[0], plan.argv.slice(1), { encoding: 'utf8' }).trim();
      expect((await readFile(procs, 'utf8')).trim()).toBe(printed);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('podflow-launch (native/podflow-launch.c, as `npm run build` built it)', () => {
  const built = existsSync(BUILT_LAUNCHER);
  const asRoot = built && process.getuid?.() === 0 ? it : it.skip;
  const whenBuilt = built ? it : it.skip;

  /** Runs the launcher; its exit code, stdout and stderr. */
  function launch(args: string[]): { status: number; stdout: string; stderr: string } {
    const ran = spawnSync(BUILT_LAUNCHER, args, { encoding: 'utf8' });
    return { status: ran.status ?? -1, stdout: ran.stdout, stderr: ran.stderr };
  }

  whenBuilt('refuses what it does not understand with exit 125 and a line that says what', () => {
    expect(launch(['--bogus', '--', 'true'])).toEqual({ status: LAUNCH_SETUP_FAILED_EXIT, stdout: '', stderr: 'podflow-launch: unknown argument --bogus\n' });
    expect(launch(['--uid', '12x', '--', 'true']).stderr).toBe('podflow-launch: the uid is not a number up to 4294967294: 12x\n');
    expect(launch(['--as=-1', '--', 'true']).stderr).toMatch(/^podflow-launch: --as=-1 is not a number/);
    expect(launch(['--uid', '7']).stderr).toBe('podflow-launch: no command after --\n');
    expect(launch(['--home', '/h', '1', '--', 'true']).stderr).toBe('podflow-launch: --home needs --uid\n');
    expect(launch(['--', '/nonexistent/bin']).stderr).toBe('podflow-launch: cannot execute /nonexistent/bin: No such file or directory\n');
  });

  whenBuilt('sets each rlimit, soft and hard, and joins the cgroups with the pid that execs the command', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'launch-native-'));
    try {
      const procs = [join(dir, 'a.procs'), join(dir, 'b.procs')];
      await Promise.all(procs.map((file) => writeFile(file, '')));
      const ran = launch(['--cgroup', procs[0], '--cgroup', procs[1], '--nofile=17', '--core=0', '--fsize=4096', '--', '/bin/sh', '-c', 'echo $$ $(ulimit -n) $(ulimit -Hn) $(ulimit -c) $(ulimit -f)']);
      expect(ran.status).toBe(0);
      const [pid, ...limits] = ran.stdout.trim().split(' ');
      expect(limits).toEqual(['17', '17', '0', '8']);
      for (const file of procs) expect((await readFile(file, 'utf8')).trim()).toBe(pid);
      expect(launch(['--cgroup', join(dir, 'missing', 'cgroup.procs'), '--', 'true']).stderr).toBe(`podflow-launch: cannot join cgroup ${join(dir, 'missing', 'cgroup.procs')}: No such file or directory\n`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  asRoot('drops to the uid for good, without supplementary groups, after mounting its home tmpfs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'launch-native-'));
    const home = join(dir, 'home');
    await chmod(dir, 0o711);
    await mkdir(home);
    try {
      const ran = launch(['--home', home, String(1024 * 1024), '--uid', '65534', '--', '/bin/sh', '-c', `id -u; id -g; id -G; stat -c '%u %g %a' ${home}; df -B1 --output=size ${home} | tail -1; grep ' ${home} ' /proc/mounts`]);
      expect(ran.stderr).toBe('');
      const [uid, gid, groups, owner, size, mount] = ran.stdout.trim().split('\n');
      expect([uid, gid, groups, owner, size?.trim()]).toEqual(['65534', '65534', '65534', '65534 65534 700', String(1024 * 1024)]);
      expect(mount).toMatch(/^podflow-home \S+ tmpfs rw,nosuid,nodev,/);
      expect(launch(['--home', join(dir, 'missing'), '1', '--uid', '7', '--', 'true']).stderr).toBe(`podflow-launch: cannot mount the home tmpfs at ${join(dir, 'missing')}: No such file or directory\n`);
    } finally {
      spawnSync('umount', ['--lazy', home]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
