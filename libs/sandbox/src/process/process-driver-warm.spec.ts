import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SandboxOutcome, SandboxRequest } from '../driver';
import { BUILT_LAUNCHER } from './launch';
import { ProcessDriver } from './process-driver';

// The process driver's warm pool with real bubblewrap sandboxes: nothing here is mocked.
jest.setTimeout(60_000);

const MIB = 1024 * 1024;
let workRoot: string;
let driver: ProcessDriver;
const outcomes: SandboxOutcome[] = [];

beforeAll(async () => {
  workRoot = await mkdtemp(join(tmpdir(), 'podflow-warm-spec-'));
  await chmod(workRoot, 0o711);
  driver = new ProcessDriver({ isolation: 'bubblewrap', workRoot, memoryLimitBytes: 256 * MIB, warmPoolSize: 1, logger: { warn: () => undefined, info: () => undefined } });
  await driver.init();
});

afterAll(async () => {
  await Promise.all(outcomes.map((outcome) => outcome.dispose()));
  await driver.close();
  await rm(workRoot, { recursive: true, force: true });
});

function request(overrides: Partial<SandboxRequest> & Pick<SandboxRequest, 'code'>): SandboxRequest {
  return { executionId: `run-w.n.${randomBytes(4).toString('hex')}`, tenantId: 'tenant-a', runId: 'run-w', nodeId: 'n', attempt: 1, language: 'python', args: {}, timeoutMs: 20_000, dependencies: [], network: false, ...overrides };
}

async function run(overrides: Partial<SandboxRequest> & Pick<SandboxRequest, 'code'>): Promise<SandboxOutcome> {
  const outcome = await driver.execute(request(overrides), new AbortController().signal);
  outcomes.push(outcome);
  return outcome;
}

/** A caller's cancel check that answers after `ms`, having found the execution canceled. */
function checkFindingCancel(ms: number): { signal: AbortSignal; handOver: Promise<void> } {
  const controller = new AbortController();
  const handOver = new Promise<void>((resolve) =>
    setTimeout(() => {
      controller.abort('canceled');
      resolve();
    }, ms),
  );
  return { signal: controller.signal, handOver };
}

async function poolFull(): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const stats = driver.poolStats()!;
    if (stats.waiting.python === 1 && stats.waiting.node === 1) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`the warm pool never refilled: ${JSON.stringify(driver.poolStats())}`);
}

/** Pids of this process's children that are sandboxes (bubblewrap), waiting or running. */
async function processes(): Promise<Array<{ pid: number; ppid: number; cmdline: string }>> {
  const found: Array<{ pid: number; ppid: number; cmdline: string }> = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (stat) found.push({ pid: Number(pid), ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]), cmdline });
  }
  return found;
}

async function sandboxChildren(): Promise<number[]> {
  const found: number[] = [];
  const all = await processes();
  // Started by this process, or by its spawn server (a child of it: spawn-server.ts).
  const parents = new Set([process.pid, ...all.filter((p) => p.ppid === process.pid && p.cmdline.includes('--spawn-server')).map((p) => p.pid)]);
  for (const { pid, ppid, cmdline } of all) {
    if (!parents.has(ppid)) continue;
    if (cmdline.includes('bwrap')) found.push(pid);
  }
  return found;
}

const LEAVE_MARKERS = `
import builtins, os, subprocess, sys
def main(args):
    marker = args["marker"]
    for path in ("/home/user/marker", "/tmp/marker", "/dev/shm/marker"):
        with open(path, "w") as f:
            f.write(marker)
    builtins.podflow_marker = marker
    os.environ["PODFLOW_MARKER"] = marker
    sys.modules["podflow_marker"] = marker
    subprocess.Popen(["sleep", "30", marker], start_new_session=True)
    return {"pid": os.getpid(), "uid": os.getuid()}
`;

const LOOK_FOR_MARKERS = `
import builtins, os, sys
def main(args):
    marker = args["marker"]
    found = []
    for path in ("/home/user/marker", "/tmp/marker", "/dev/shm/marker"):
        if os.path.exists(path):
            found.append(path)
    if getattr(builtins, "podflow_marker", None) == marker: found.append("builtins")
    if os.environ.get("PODFLOW_MARKER") == marker: found.append("environ")
    if "podflow_marker" in sys.modules: found.append("sys.modules")
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read(): found.append(f"process {pid}")
            except OSError:
                pass
    return {"found": found, "pid": os.getpid()}
`;

describe('process driver: warm pool', () => {
  it('serves executions from started sandboxes, each exactly once: the next one finds nothing the last one left', async () => {
    await poolFull();
    const marker = `warm-${randomBytes(6).toString('hex')}`;
    const before = driver.poolStats()!.taken;
    const first = await run({ code: LEAVE_MARKERS, args: { marker } });
    expect(first.status).toBe('succeeded');
    await poolFull();
    const second = await run({ code: LOOK_FOR_MARKERS, args: { marker } });
    expect(second).toMatchObject({ status: 'succeeded', output: { found: [] } });
    expect(driver.poolStats()!.taken).toBe(before + 2);
    // The first one's sleeper died with its sandbox, on the host too.
    const hostSleepers = [];
    for (const pid of await readdir('/proc')) {
      if (/^\d+$/.test(pid) && (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes(marker)) hostSleepers.push(pid);
    }
    expect(hostSleepers).toEqual([]);
  });

  it('serves JavaScript and TypeScript from the Node runtime', async () => {
    await poolFull();
    const before = driver.poolStats()!.taken;
    const js = await run({ language: 'javascript', code: 'export function main(args) { return { n: args.n + 1 }; }', args: { n: 1 } });
    await poolFull();
    const ts = await run({ language: 'typescript', code: 'export function main(args: { n: number }): { n: number } { return { n: args.n * 2 }; }', args: { n: 4 } });
    expect(js).toMatchObject({ status: 'succeeded', output: { n: 2 } });
    expect(ts).toMatchObject({ status: 'succeeded', output: { n: 8 } });
    expect(driver.poolStats()!.taken).toBe(before + 2);
  });

  it('counts the timeout from the hand-over, not from when the sandbox was started', async () => {
    await poolFull();
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const taken = driver.poolStats()!.taken;
    // Waited 1.2 s in the pool, then 1 s to run a no-op: plenty.
    const outcome = await run({ code: 'def main(args):\n    return {}', timeoutMs: 1_000 });
    expect(outcome.status).toBe('succeeded');
    expect(driver.poolStats()!.taken).toBe(taken + 1);
    await poolFull();
    const slow = await run({ code: 'import time\ndef main(args):\n    time.sleep(5)\n    return {}', timeoutMs: 500 });
    expect(slow).toMatchObject({ status: 'failed', error: { code: 'EXECUTION_TIMEOUT' } });
  });

  it('hands the code over only after the caller\'s check: a cancel it finds stops the execution before the request is written', async () => {
    await poolFull();
    // The caller's check (is this execution canceled?) answers after 300 ms, and says yes.
    const warmCheck = checkFindingCancel(300);
    const outcome = await driver.execute(request({ code: 'def main(args):\n    return {"ran": True}' }), warmCheck.signal, warmCheck.handOver);
    outcomes.push(outcome);
    // A no-op that had been handed over would have succeeded long before the check answered.
    expect(outcome).toMatchObject({ status: 'failed', error: { code: 'CANCELED' } });
    // The same on the cold path (other resources): the sandbox starts, the request waits for the check.
    const coldCheck = checkFindingCancel(1_000);
    const cold = await driver.execute(request({ code: 'def main(args):\n    return {"ran": True}', resources: { memory: '300Mi' } }), coldCheck.signal, coldCheck.handOver);
    outcomes.push(cold);
    expect(cold).toMatchObject({ status: 'failed', error: { code: 'CANCELED' } });
  });

  it('starts cold what a tenant-neutral sandbox cannot serve: other resources', async () => {
    await poolFull();
    const before = driver.poolStats()!;
    const outcome = await run({ code: 'def main(args):\n    return {"ok": True}', resources: { memory: '300Mi' } });
    expect(outcome).toMatchObject({ status: 'succeeded', output: { ok: true } });
    expect(driver.poolStats()!.taken).toBe(before.taken);
    expect(driver.poolStats()!.waiting.python).toBe(1);
  });

  const asRootWithLauncher = process.getuid?.() === 0 && existsSync(BUILT_LAUNCHER) ? it : it.skip;

  asRootWithLauncher('starts sandboxes through the spawn server, and a spawn server that died is replaced along with what it had started', async () => {
    await poolFull();
    const servers = async () => (await processes()).filter((p) => p.ppid === process.pid && p.cmdline.includes('--spawn-server'));
    const [server] = await servers();
    expect(server).toBeDefined();
    let waiting = await sandboxChildren();
    for (let i = 0; i < 150 && waiting.length !== 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      waiting = await sandboxChildren();
    }
    // Both waiting sandboxes are the server's children, none the worker's own.
    const parents = new Map((await processes()).map((p) => [p.pid, p.ppid]));
    expect(waiting.map((pid) => parents.get(pid))).toEqual([server!.pid, server!.pid]);
    const lost = driver.poolStats()!.lost;
    process.kill(server!.pid, 'SIGKILL');
    for (let i = 0; i < 300 && driver.poolStats()!.lost < lost + 2; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(driver.poolStats()!.lost).toBe(lost + 2);
    await poolFull();
    const outcome = await run({ code: 'def main(args):\n    return {"after": "server"}' });
    expect(outcome).toMatchObject({ status: 'succeeded', output: { after: 'server' } });
    const [next] = await servers();
    expect(next!.pid).not.toBe(server!.pid);
  });

  it('replaces a waiting sandbox that was killed', async () => {
    await poolFull();
    const lost = driver.poolStats()!.lost;
    // The last test's cold sandbox was killed at its answer and is reaped in the background: wait
    // until only the pool's two are left.
    let waiting = await sandboxChildren();
    for (let i = 0; i < 150 && waiting.length !== 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      waiting = await sandboxChildren();
    }
    expect(waiting.length).toBe(2);
    for (const pid of waiting) process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 300 && driver.poolStats()!.lost < lost + 2; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(driver.poolStats()!.lost).toBe(lost + 2);
    await poolFull();
    const outcome = await run({ code: 'def main(args):\n    return {"after": "kill"}' });
    expect(outcome).toMatchObject({ status: 'succeeded', output: { after: 'kill' } });
  });

  it('close() leaves no waiting sandbox and no directory behind', async () => {
    const own = new ProcessDriver({ isolation: 'bubblewrap', workRoot: await mkdtemp(join(tmpdir(), 'podflow-warm-close-')), warmPoolSize: 2, logger: { warn: () => undefined, info: () => undefined } });
    await own.init();
    for (let i = 0; i < 300 && own.poolStats()!.waiting.python + own.poolStats()!.waiting.node < 4; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    const root = (own as unknown as { workRoot: string }).workRoot;
    expect((await readdir(root)).filter((name) => name.startsWith('exec-')).length).toBe(4);
    await own.close();
    expect((await readdir(root)).filter((name) => name.startsWith('exec-'))).toEqual([]);
    await rm(root, { recursive: true, force: true });
  });

  it('a worker killed with a full pool leaves nothing running or stored once the next driver has started on its work root', async () => {
    const root = await mkdtemp(join(tmpdir(), 'podflow-warm-crash-'));
    await chmod(root, 0o711);
    // A separate process holding a full pool, as a worker would; the built package, as the worker runs it.
    const script = `
      const { ProcessDriver } = require(${JSON.stringify(join(__dirname, '..', '..', 'dist', 'index.js'))});
      const driver = new ProcessDriver({ isolation: 'bubblewrap', workRoot: ${JSON.stringify(root)}, warmPoolSize: 2 });
      driver.init().then(async () => {
        for (;;) {
          const s = driver.poolStats();
          if (s.waiting.python + s.waiting.node === 4) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        process.stdout.write('full');
      });`;
    const worker = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    worker.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      worker.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('full') && resolve());
      worker.once('exit', (code) => reject(new Error(`the pool process exited early (${code}): ${stderr}`)));
    });
    const sandboxesOf = async () => {
      const found: string[] = [];
      for (const pid of await readdir('/proc')) {
        const cmdline = /^\d+$/.test(pid) ? await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '') : '';
        const state = cmdline.includes(root) ? /^State:\s+(.*)$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8').catch(() => ''))?.[1] : undefined;
        if (state && !state.startsWith('Z')) found.push(`${pid} (${state}): ${cmdline.replace(/\0/g, ' ').slice(0, 120)}`);
      }
      return found;
    };
    expect((await sandboxesOf()).length).toBeGreaterThanOrEqual(4);
    expect((await readdir(root)).filter((name) => name.startsWith(`exec-${worker.pid}-`)).length).toBe(4);
    worker.kill('SIGKILL');
    await new Promise((resolve) => worker.once('exit', resolve));
    // --die-with-parent ends the waiting sandboxes with their worker; one that was still being set
    // up can miss that signal. Their directories stay until a driver starts on the same work root,
    // which kills what is left of them and removes the directories.
    const next = new ProcessDriver({ isolation: 'bubblewrap', workRoot: root, logger: { warn: () => undefined, info: () => undefined } });
    await next.init();
    expect(await sandboxesOf()).toEqual([]);
    expect((await readdir(root)).filter((name) => name.startsWith(`exec-${worker.pid}-`))).toEqual([]);
    await next.close();
    await rm(root, { recursive: true, force: true });
  });
});
