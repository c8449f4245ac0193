import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SandboxRequest } from '../driver';
import { forgedPythonAnswer } from '../testing/forged-answer';
import { NOT_ISOLATED_WARNING } from './isolation-plan';
import { ProcessDriver } from './process-driver';

// `isolation: 'none'`: the fallback off Linux or without bubblewrap. Real processes, no mocks.
jest.setTimeout(60_000);

let workRoot: string;
let driver: ProcessDriver;
const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = [];

beforeAll(async () => {
  workRoot = await mkdtemp(join(tmpdir(), 'podflow-sandbox-none-spec-'));
  driver = new ProcessDriver({ isolation: 'none', workRoot, logger: { warn: (obj, msg) => warnings.push({ obj, msg }), info: () => undefined } });
});

afterAll(async () => {
  await driver.close();
  await rm(workRoot, { recursive: true, force: true });
});

function request(overrides: Partial<SandboxRequest> & Pick<SandboxRequest, 'code'>): SandboxRequest {
  return {
    executionId: `run-2.node-1.${randomBytes(4).toString('hex')}`,
    tenantId: 'tenant-a',
    runId: 'run-2',
    nodeId: 'node-1',
    attempt: 1,
    language: 'python',
    args: {},
    timeoutMs: 20_000,
    dependencies: [],
    network: false,
    ...overrides,
  };
}

async function processesWithMarker(marker: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(marker)) found.push(`${pid}: ${cmdline.replace(/\0/g, ' ')}`);
  }
  return found;
}

describe('ProcessDriver without isolation', () => {
  it('says so', async () => {
    expect(await driver.init()).toEqual({
      isolation: 'none',
      reason: 'isolation: none was configured',
      rlimits: true,
      dedicatedUids: false,
      cgroups: false,
      homeQuota: false,
      egress: false,
      seccomp: false,
      launcher: false,
      spawnServer: false,
    });
  });

  it('runs Python in a fresh host directory with a scrubbed environment, and warns loudly once', async () => {
    const code = 'import os\ndef main(args):\n    open("out.txt", "w").write("x")\n    return {"cwd": os.getcwd(), "home": os.environ["HOME"], "env": sorted(os.environ)}\n';
    const first = await driver.execute(request({ code }), new AbortController().signal);
    const second = await driver.execute(request({ code }), new AbortController().signal);
    try {
      expect(first.error).toBeUndefined();
      const cwd = first.output?.cwd as string;
      expect(cwd.startsWith(workRoot)).toBe(true);
      expect(first.output?.home).toBe(cwd);
      expect(second.output?.cwd).not.toBe(cwd);
      expect(first.output?.env).toEqual(['HOME', 'LANG', 'MALLOC_ARENA_MAX', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'TMPDIR']);
      expect(first.files.map((file) => file.path)).toEqual(['out.txt']);
      await first.dispose();
      expect(existsSync(cwd)).toBe(false);
    } finally {
      await first.dispose();
      await second.dispose();
    }
    const loud = warnings.filter(({ msg }) => msg === NOT_ISOLATED_WARNING);
    expect(loud).toHaveLength(1);
    expect(loud[0].msg).toMatch(/^process sandbox is NOT isolated: install bubblewrap \(apt-get install bubblewrap\)/);
  });

  it('runs JavaScript', async () => {
    const outcome = await driver.execute(request({ language: 'javascript', code: 'async function main({ a, b }) { return { sum: a + b } }' , args: { a: 1, b: 2 } }), new AbortController().signal);
    await outcome.dispose();
    expect(outcome).toMatchObject({ status: 'succeeded', output: { sum: 3 } });
  });

  it('kills the whole process group at the timeout', async () => {
    const marker = `podflow-marker-${randomBytes(8).toString('hex')}`;
    const outcome = await driver.execute(
      request({
        timeoutMs: 1_500,
        code: `import subprocess, sys\ndef main(args):\n    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "${marker}"])\n    while True:\n        pass\n`,
      }),
      new AbortController().signal,
    );
    await outcome.dispose();
    expect(outcome.error).toMatchObject({ code: 'EXECUTION_TIMEOUT', message: 'main did not return within 1.5s (node timeout); the sandbox was killed' });
    expect(await processesWithMarker(marker)).toEqual([]);
  });

  it('still applies the memory limit through prlimit', async () => {
    const small = new ProcessDriver({ isolation: 'none', workRoot, memoryLimitBytes: 128 * 1024 * 1024 });
    const outcome = await small.execute(request({ code: 'def main(args):\n    return {"n": len(bytearray(1024 ** 3))}\n' }), new AbortController().signal);
    await outcome.dispose();
    await small.close();
    expect(outcome.error?.code).toBe('MEMORY_LIMIT_EXCEEDED');
  });

  it('fails with SANDBOX_LOST naming a missing interpreter', async () => {
    const broken = new ProcessDriver({ isolation: 'none', workRoot, pythonBin: '/nonexistent/python3', prlimitBin: '/nonexistent/prlimit' });
    const outcome = await broken.execute(request({ code: 'def main(args):\n    return {}\n' }), new AbortController().signal);
    await outcome.dispose();
    await broken.close();
    expect(outcome.error?.code).toBe('SANDBOX_LOST');
    expect(outcome.error?.message).toContain('/nonexistent/python3');
  });

  it('fails with SANDBOX_LOST when bubblewrap is required but missing', async () => {
    const strict = new ProcessDriver({ isolation: 'bubblewrap', workRoot, bwrapBin: '/nonexistent/bwrap' });
    await expect(strict.init()).rejects.toThrow(/bubblewrap isolation was requested but does not work here/);
    const outcome = await strict.execute(request({ code: 'def main(args):\n    return {}\n' }), new AbortController().signal);
    expect(outcome.error?.code).toBe('SANDBOX_LOST');
    await strict.close();
  });

  it('fails with SANDBOX_LOST when the work root cannot be created', async () => {
    const blocked = join(workRoot, 'a-file');
    await writeFile(blocked, 'not a directory');
    const broken = new ProcessDriver({ isolation: 'none', workRoot: join(blocked, 'root') });
    await expect(broken.init()).rejects.toThrow(/could not prepare the sandbox work root/);
    const outcome = await broken.execute(request({ code: 'def main(args):\n    return {}\n' }), new AbortController().signal);
    expect(outcome.error).toMatchObject({ code: 'SANDBOX_LOST', message: expect.stringContaining('ENOTDIR') });
    await broken.close();
  });

  it('falls back to no isolation in auto mode when bwrap is missing, warning once', async () => {
    const seen: string[] = [];
    const auto = new ProcessDriver({ workRoot, bwrapBin: '/nonexistent/bwrap', logger: { warn: (_obj, msg) => seen.push(msg), info: () => undefined } });
    expect((await auto.init()).isolation).toBe('none');
    const outcome = await auto.execute(request({ code: 'def main(args):\n    return {"ok": True}\n' }), new AbortController().signal);
    await outcome.dispose();
    await auto.close();
    expect(outcome.output).toEqual({ ok: true });
    expect(seen.filter((msg) => msg === NOT_ISOLATED_WARNING)).toHaveLength(1);
  });

  it('reports SANDBOX_LOST, not a throw, when the files cannot be read on the host afterwards', async () => {
    // Without bubblewrap the code can remove its own directory; under bubblewrap the same happens
    // when something else on the work root removes it. A throw would fail the queue job, which runs
    // the code again without anyone seeing why.
    const answer = { ok: true, output: {}, files: [{ path: 'a.txt', size: 1, sha256: 'x' }], logs: { stdout: '', stderr: '', truncated: false }, durationMs: 1 };
    const outcome = await driver.execute(request({ code: forgedPythonAnswer(answer, { before: ['import shutil', 'shutil.rmtree(os.getcwd())'] }) }), new AbortController().signal);
    await outcome.dispose();
    expect(outcome.status).toBe('failed');
    expect(outcome.error?.code).toBe('SANDBOX_LOST');
    expect(outcome.error?.message).toMatch(/^the files the code left under \/home\/user could not be read on the host: ENOENT/);
  });
});
