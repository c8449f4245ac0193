import { buildLaunch, homeTmpfsOptions, LAUNCH_SETUP_FAILED_EXIT } from './launch';

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
    expect(() => buildLaunch({ command, homeTmpfs: { dir: '/h', sizeBytes: 1 }, binaries })).toThrow(/needs the sandbox uid and the mount binary/);
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
