import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { BUILT_LAUNCHER } from './launch';
import { SpawnServer, type ServedChild } from './spawn-server';

// The real podflow-launch --spawn-server, as root (the worker opens the pipes through /proc/<server>/fd).
const asRoot = existsSync(BUILT_LAUNCHER) && process.getuid?.() === 0 ? it : it.skip;

const ENV = { PATH: '/usr/bin:/bin' };

interface Ended {
  exit: [number | null, NodeJS.Signals | null];
  stdout: string;
  stderr: string;
}

/** Collects a child's output and resolves at its 'close' (rejects at 'error'). */
function ended(child: ServedChild): Promise<Ended> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ exit: [code, signal], stdout, stderr }));
  });
}

const processGone = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return true;
  }
};

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 250 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  if (!check()) throw new Error(`timed out waiting until ${what}`);
}

describe('SpawnServer', () => {
  let server: SpawnServer;
  beforeEach(() => {
    server = new SpawnServer(BUILT_LAUNCHER);
  });
  afterEach(() => server.close());

  asRoot('starts a program with its pipes: stdin reaches it whole (1 MiB), stdout and stderr come back, then its exit code', async () => {
    const input = 'x'.repeat(1024 * 1024);
    const child = server.spawn({ command: 'sh', args: ['-c', 'wc -c; echo done >&2; exit 7'], cwd: '/', env: ENV, pipes: ['in', 'out', 'out'] });
    const result = ended(child);
    child.stdin!.end(input);
    expect(await result).toEqual({ exit: [7, null], stdout: `${input.length}\n`, stderr: 'done\n' });
    expect(child.pid).toBeGreaterThan(0);
  });

  asRoot('gives the child its own session, directory and environment, and no descriptor of the worker past its pipes', async () => {
    const child = server.spawn({
      command: 'sh',
      args: ['-c', 'echo "$(ps -o sid= -p $$ | tr -d " ") $$ $(pwd) $GREETING $(ls /proc/self/fd | sort -n | tr "\\n" " ")"'],
      cwd: '/tmp',
      env: { ...ENV, GREETING: 'hello' },
      pipes: ['in', 'out', 'out', 'out'],
    });
    child.stdin!.end();
    // An output is closed once it has been read to its end, as with child_process.
    child.stdio[3]!.resume();
    const { stdout, exit } = await ended(child);
    const [sid, pid, cwd, greeting, ...fds] = stdout.trim().split(' ');
    expect(exit).toEqual([0, null]);
    expect(sid).toBe(pid);
    expect([cwd, greeting]).toEqual(['/tmp', 'hello']);
    // 0-3 are its pipes; one more is ls's own directory handle.
    expect(fds.map(Number).filter((fd) => fd > 3)).toHaveLength(1);
  });

  asRoot('reports a program that cannot be executed as an error with its errno, like child_process.spawn', async () => {
    const child = server.spawn({ command: '/nonexistent/program', args: [], cwd: '/', env: ENV, pipes: ['in', 'out', 'out'] });
    await expect(ended(child)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(child.pid).toBeUndefined();
  });

  asRoot('kills the whole process group, and a kill asked for while the child is starting is carried out once it runs', async () => {
    const child = server.spawn({ command: 'sh', args: ['-c', 'sleep 100 & echo $!; wait'], cwd: '/', env: ENV, pipes: ['in', 'out', 'out'] });
    const result = ended(child);
    let grandchild = 0;
    child.stdout!.once('data', (chunk: Buffer) => {
      grandchild = Number(chunk.toString().trim());
      child.killGroup();
    });
    expect((await result).exit).toEqual([null, 'SIGKILL']);
    await until(() => processGone(grandchild), `sleep (${grandchild}) is gone`);

    const early = server.spawn({ command: 'sleep', args: ['100'], cwd: '/', env: ENV, pipes: ['in', 'out', 'out'] });
    early.killGroup();
    expect((await ended(early)).exit).toEqual([null, 'SIGKILL']);
  });

  asRoot("runs podflow-launch's own launch in the child without exec'ing it again (launch mode)", async () => {
    const child = server.spawn({ command: BUILT_LAUNCHER, args: ['--uid', '65534', '--nofile=77', '--', 'sh', '-c', 'id -u; ulimit -n'], cwd: '/', env: ENV, pipes: ['in', 'out', 'out'], mode: 'launch' });
    child.stdin!.end();
    expect(await ended(child)).toEqual({ exit: [0, null], stdout: '65534\n77\n', stderr: '' });
    const refused = server.spawn({ command: BUILT_LAUNCHER, args: ['--bogus', '--', 'true'], cwd: '/', env: ENV, pipes: ['in', 'out', 'out'], mode: 'launch' });
    refused.stdin!.end();
    expect(await ended(refused)).toEqual({ exit: [125, null], stdout: '', stderr: 'podflow-launch: unknown argument --bogus\n' });
  });

  asRoot('answers "spawned" only once a launched child leads its session: a group kill at once never misses one (40 at a time)', async () => {
    const children = Array.from({ length: 40 }, () => server.spawn({ command: BUILT_LAUNCHER, args: ['--', 'sleep', '100'], cwd: '/', env: ENV, pipes: ['in', 'out', 'out'], mode: 'launch' }));
    const results = children.map((child) => ended(child));
    // Asked while starting: carried out the moment each is reported spawned.
    for (const child of children) child.killGroup();
    for (const result of results) expect((await result).exit).toEqual([null, 'SIGKILL']);
  });

  asRoot('(the protocol itself) a launched child already leads its own session when its "spawned" line is read', async () => {
    // The raw server, so the check runs the moment each line is read. It and its children share
    // one CPU with busy loops, and each spawn is sent once the last was answered: a child set up
    // only after its "spawned" line (the race this guards against) then shows at once.
    const hogs = [0, 1, 2].map(() => spawn('taskset', ['-c', '0', 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore' }));
    const raw = spawn('taskset', ['-c', '0', BUILT_LAUNCHER, '--spawn-server', String(process.pid)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const request = (id: number) => {
      const payload = ['spawn', String(id), 'wrr', 'launch', '/', '0', '4', BUILT_LAUNCHER, '--', 'sleep', '100'].map((value) => `${value}\0`).join('');
      return `${Buffer.byteLength(payload)}:${payload}`;
    };
    const sessions: Array<[number, number]> = [];
    let buffered = '';
    try {
      await new Promise<void>((resolve) => {
        raw.stdout.on('data', (chunk: Buffer) => {
          buffered += chunk.toString();
          for (let end = buffered.indexOf('\n'); end >= 0; end = buffered.indexOf('\n')) {
            const [kind, id, pid] = buffered.slice(0, end).split(' ');
            buffered = buffered.slice(end + 1);
            if (kind !== 'spawned') continue;
            const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
            // Fields after the command: state, ppid, pgrp, session.
            sessions.push([Number(pid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3])]);
            if (sessions.length === 60) resolve();
            else raw.stdin.write(request(Number(id) + 1));
          }
        });
        raw.stdin.write(request(1));
      });
    } finally {
      for (const hog of hogs) hog.kill('SIGKILL');
    }
    raw.stdin.end();
    await new Promise((resolve) => raw.on('close', resolve));
    expect(sessions.filter(([pid, sid]) => pid !== sid)).toEqual([]);
    for (const [pid] of sessions) expect(processGone(pid)).toBe(true);
  });

  asRoot('gives a child /dev/null for fds below 3 it has no pipe for, never the worker\'s stderr', async () => {
    const child = server.spawn({ command: 'readlink', args: ['/proc/self/fd/2'], cwd: '/', env: ENV, pipes: ['in', 'out'] });
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stdin!.end();
    await new Promise((resolve) => child.on('close', resolve));
    expect(stdout).toBe('/dev/null\n');
  });

  asRoot("closes once the child exited even when an output is never read (it is drained, as child_process does)", async () => {
    const child = server.spawn({ command: 'sh', args: ['-c', 'echo unread >&3; echo unread'], cwd: '/', env: ENV, pipes: ['in', 'out', 'out', 'out'] });
    child.stdin!.end();
    const closed = await new Promise((resolve) => child.on('close', (code: number | null) => resolve(code)));
    expect(closed).toBe(0);
  });

  asRoot('refuses a NUL byte in a field before anything is started, and closes cleanly after it', async () => {
    expect(() => server.spawn({ command: 'echo', args: ['a\0b'], cwd: '/', env: ENV, pipes: ['in', 'out', 'out'] })).toThrow(/NUL byte/);
    const next = server.spawn({ command: 'echo', args: ['fine'], cwd: '/', env: ENV, pipes: ['in', 'out', 'out'] });
    expect(await ended(next)).toEqual({ exit: [0, null], stdout: 'fine\n', stderr: '' });
  });

  asRoot('a server that dies ends what it started (killed), and the next spawn starts a new one', async () => {
    const child = server.spawn({ command: 'sleep', args: ['100'], cwd: '/', env: ENV, pipes: ['in', 'out', 'out'] });
    const result = ended(child);
    await until(() => child.pid !== undefined, 'the child runs');
    const serverPid = Number(readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    process.kill(serverPid, 'SIGKILL');
    expect((await result).exit).toEqual([null, 'SIGKILL']);
    await until(() => processGone(child.pid!), 'the orphan is gone');
    const next = server.spawn({ command: 'echo', args: ['again'], cwd: '/', env: ENV, pipes: ['in', 'out', 'out'] });
    expect(await ended(next)).toEqual({ exit: [0, null], stdout: 'again\n', stderr: '' });
  });

  asRoot('close() kills what is still running, a launched child reading its stdin too, and the server exits', async () => {
    const child = server.spawn({ command: 'sleep', args: ['100'], cwd: '/', env: ENV, pipes: ['in', 'out', 'out'] });
    const reader = server.spawn({ command: BUILT_LAUNCHER, args: ['--', 'cat'], cwd: '/', env: ENV, pipes: ['in', 'out', 'out'], mode: 'launch' });
    const results = [ended(child), ended(reader)];
    await until(() => child.pid !== undefined && reader.pid !== undefined, 'the children run');
    const serverPid = Number(readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    server.close();
    for (const result of results) expect((await result).exit).toEqual([null, 'SIGKILL']);
    await until(() => processGone(child.pid!) && processGone(reader.pid!) && processGone(serverPid), 'the children and the server are gone');
    expect(server.available).toBe(false);
  });
});
