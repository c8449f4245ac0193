import { buildBubblewrapArgs, installationDirOf, SANDBOX_RUNNER_PATHS, type BubblewrapSpec } from './bubblewrap';

function spec(overrides: Partial<BubblewrapSpec> = {}): BubblewrapSpec {
  return {
    homeDir: '/var/podflow/exec-abc/home',
    rootEntries: [
      { path: '/bin', symlinkTo: 'usr/bin' },
      { path: '/lib', symlinkTo: 'usr/lib' },
      { path: '/lib64', symlinkTo: 'usr/lib64' },
      { path: '/sbin', symlinkTo: 'usr/sbin' },
    ],
    syntheticEtc: { passwd: '/var/podflow/etc-1/passwd', group: '/var/podflow/etc-1/group', hosts: '/var/podflow/etc-1/hosts', resolvConf: '/var/podflow/etc-1/resolv.conf' },
    runner: { python: '/repo/libs/runner/python/podflow_runner.py', node: '/repo/libs/runner/dist/node-runner.js' },
    extraReadOnly: [],
    network: false,
    env: { PATH: '/usr/bin:/bin', HOME: '/home/user' },
    command: ['/usr/bin/python3', '-I', '-u', SANDBOX_RUNNER_PATHS.python],
    ...overrides,
  };
}

/** The value following `flag` at each of its occurrences (`--bind a b` → [[a, b]]). */
function occurrences(args: string[], flag: string, arity: number): string[][] {
  const found: string[][] = [];
  args.forEach((arg, index) => {
    if (arg === flag) found.push(args.slice(index + 1, index + 1 + arity));
  });
  return found;
}

describe('buildBubblewrapArgs', () => {
  it('unshares every namespace, network included, and runs as uid/gid 1000 without capabilities', () => {
    const args = buildBubblewrapArgs(spec());
    expect(args).toEqual(expect.arrayContaining(['--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent', '--new-session']));
    expect(args).not.toContain('--share-net');
    expect(occurrences(args, '--uid', 1)).toEqual([['1000']]);
    expect(occurrences(args, '--gid', 1)).toEqual([['1000']]);
    expect(occurrences(args, '--cap-drop', 1)).toEqual([['ALL']]);
  });

  it('keeps the (egress) namespace it starts in only when egress is granted, with the slirp resolver and no host names', () => {
    const args = buildBubblewrapArgs(spec({ network: true }));
    expect(args).toContain('--share-net');
    expect(occurrences(args, '--ro-bind', 2)).toEqual(expect.arrayContaining([['/var/podflow/etc-1/resolv.conf', '/etc/resolv.conf']]));
    expect(occurrences(args, '--ro-bind', 2)).toEqual(expect.arrayContaining([['/var/podflow/etc-1/hosts', '/etc/hosts']]));
    expect(args.join(' ')).not.toMatch(/\/etc\/resolv\.conf \/etc\/resolv\.conf|\/etc\/hosts \/etc\/hosts/);
    expect(buildBubblewrapArgs(spec()).join(' ')).not.toContain('resolv.conf');
  });

  it('loads a seccomp filter from the given fd', () => {
    expect(occurrences(buildBubblewrapArgs(spec({ seccompFd: 4 })), '--seccomp', 1)).toEqual([['4']]);
    expect(buildBubblewrapArgs(spec())).not.toContain('--seccomp');
  });

  it('mounts /usr read-only and recreates merged-/usr symlinks', () => {
    const args = buildBubblewrapArgs(spec());
    expect(occurrences(args, '--ro-bind', 2)).toContainEqual(['/usr', '/usr']);
    expect(occurrences(args, '--symlink', 2)).toEqual([
      ['usr/bin', '/bin'],
      ['usr/lib', '/lib'],
      ['usr/lib64', '/lib64'],
      ['usr/sbin', '/sbin'],
    ]);
  });

  it('mounts real /bin and /lib directories read-only on hosts without merged /usr', () => {
    const args = buildBubblewrapArgs(spec({ rootEntries: [{ path: '/bin', directory: true }, { path: '/lib', directory: true }] }));
    expect(occurrences(args, '--symlink', 2)).toEqual([]);
    expect(occurrences(args, '--ro-bind', 2)).toEqual(expect.arrayContaining([['/bin', '/bin'], ['/lib', '/lib']]));
  });

  it('binds only the execution directory read-write, at /home/user, and makes the root read-only', () => {
    const args = buildBubblewrapArgs(spec());
    expect(occurrences(args, '--bind', 2)).toEqual([['/var/podflow/exec-abc/home', '/home/user']]);
    expect(occurrences(args, '--dev-bind', 2)).toEqual([]);
    expect(occurrences(args, '--remount-ro', 1)).toEqual([['/dev'], ['/']]);
    expect(args.lastIndexOf('--remount-ro')).toBeGreaterThan(args.indexOf('--bind'));
    expect(occurrences(args, '--chdir', 1)).toEqual([['/home/user']]);
  });

  it('gives the sandbox private /proc, a read-only /dev with a size-capped /dev/shm, and a size-capped /tmp', () => {
    const args = buildBubblewrapArgs(spec({ tmpSizeBytes: 1024, shmSizeBytes: 2048 }));
    expect(occurrences(args, '--proc', 1)).toEqual([['/proc']]);
    expect(occurrences(args, '--dev', 1)).toEqual([['/dev']]);
    const shm = args.indexOf('/dev/shm');
    expect(args.slice(shm - 5, shm + 3)).toEqual(['--perms', '1777', '--size', '2048', '--tmpfs', '/dev/shm', '--remount-ro', '/dev']);
    const tmp = args.lastIndexOf('/tmp');
    expect(args.slice(tmp - 5, tmp + 1)).toEqual(['--size', '1024', '--perms', '1777', '--tmpfs', '/tmp']);
    // Without a size, /tmp is still its own tmpfs; /dev/shm always has one.
    expect(occurrences(buildBubblewrapArgs(spec()), '--size', 1)).toEqual([['16777216']]);
  });

  it('mounts the runner programs read-only at fixed paths', () => {
    const binds = occurrences(buildBubblewrapArgs(spec()), '--ro-bind', 2);
    expect(binds).toContainEqual(['/repo/libs/runner/python/podflow_runner.py', '/opt/podflow/runner/podflow_runner.py']);
    expect(binds).toContainEqual(['/repo/libs/runner/dist/node-runner.js', '/opt/podflow/runner/node-runner.js']);
  });

  it('mounts a compiled Python runner at its own path, and not the source', () => {
    const binds = occurrences(buildBubblewrapArgs(spec({ runner: { python: '/var/podflow/runner/podflow_runner.pyc', node: '/repo/libs/runner/dist/node-runner.js' } })), '--ro-bind', 2);
    expect(binds).toContainEqual(['/var/podflow/runner/podflow_runner.pyc', SANDBOX_RUNNER_PATHS.pythonCompiled]);
    expect(binds.map(([, target]) => target)).not.toContain(SANDBOX_RUNNER_PATHS.python);
  });

  it('synthesizes accounts and hosts instead of exposing the host files', () => {
    const args = buildBubblewrapArgs(spec());
    const binds = occurrences(args, '--ro-bind', 2);
    expect(binds).toContainEqual(['/var/podflow/etc-1/passwd', '/etc/passwd']);
    expect(binds).toContainEqual(['/var/podflow/etc-1/group', '/etc/group']);
    expect(binds).toContainEqual(['/var/podflow/etc-1/hosts', '/etc/hosts']);
    const etc = [...binds, ...occurrences(args, '--ro-bind-try', 2)].map(([source]) => source).filter((source) => source.startsWith('/etc/'));
    expect(etc).not.toEqual(expect.arrayContaining(['/etc/shadow']));
    expect(etc).not.toEqual(expect.arrayContaining(['/etc/passwd']));
    expect(etc).toEqual(expect.arrayContaining(['/etc/ld.so.cache', '/etc/ssl']));
  });

  it('mounts interpreter installations outside /usr read-only at the same path', () => {
    const args = buildBubblewrapArgs(spec({ extraReadOnly: ['/opt/node-v20'] }));
    expect(occurrences(args, '--ro-bind', 2)).toContainEqual(['/opt/node-v20', '/opt/node-v20']);
  });

  it('clears the environment before setting only the given variables, then runs the command', () => {
    const args = buildBubblewrapArgs(spec({ infoFd: 3 }));
    const clear = args.indexOf('--clearenv');
    expect(clear).toBeGreaterThan(-1);
    expect(occurrences(args, '--setenv', 2)).toEqual([
      ['PATH', '/usr/bin:/bin'],
      ['HOME', '/home/user'],
    ]);
    expect(args.indexOf('--setenv')).toBeGreaterThan(clear);
    expect(occurrences(args, '--info-fd', 1)).toEqual([['3']]);
    const separator = args.indexOf('--');
    expect(args.slice(separator + 1)).toEqual(['/usr/bin/python3', '-I', '-u', '/opt/podflow/runner/podflow_runner.py']);
  });

  it('rejects an empty command', () => {
    expect(() => buildBubblewrapArgs(spec({ command: [] }))).toThrow(/command is empty/);
  });
});

describe('installationDirOf', () => {
  it('needs nothing for interpreters under /usr, /bin or /sbin', () => {
    expect(installationDirOf('/usr/bin/python3.11')).toBeUndefined();
    expect(installationDirOf('/bin/node')).toBeUndefined();
    expect(installationDirOf('/usr/local/bin/node')).toBeUndefined();
  });

  it('mounts the prefix of a bin/ installation (nvm, pyenv, /opt)', () => {
    expect(installationDirOf('/root/.nvm/versions/node/v20.11.0/bin/node')).toBe('/root/.nvm/versions/node/v20.11.0');
    expect(installationDirOf('/opt/python/3.12/bin/python3.12')).toBe('/opt/python/3.12');
  });

  it('mounts the directory of an interpreter not in a bin/ directory', () => {
    expect(installationDirOf('/opt/node/node')).toBe('/opt/node');
  });

  it('refuses to mount the whole root', () => {
    expect(() => installationDirOf('/node')).toThrow(/directly under/);
  });
});
