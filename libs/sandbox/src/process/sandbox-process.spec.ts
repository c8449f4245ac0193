import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSandboxProcess, type SandboxLaunchSpec } from './sandbox-process';

// Start and hand-over of a plain child process (no bubblewrap): what the warm pool relies on.

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'podflow-sandbox-process-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `sh` that copies its stdin to `received` once stdin closes, then answers on stdout. */
function launch(script: string): SandboxLaunchSpec {
  return { command: '/bin/sh', args: ['-c', script], cwd: dir, env: { PATH: '/usr/bin:/bin' }, stderrTailBytes: 4096, infoFd: false };
}
const runSpec = (signal = new AbortController().signal) => ({ stdin: 'the request', stdoutCapBytes: 1 << 20, timeoutMs: 10_000, signal });

describe('startSandboxProcess', () => {
  it('waits for its request; the timeout counts from the hand-over', async () => {
    const started = startSandboxProcess(launch('cat > received; echo answered'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(started.waiting).toBe(true);
    const result = await started.run({ ...runSpec(), timeoutMs: 250 });
    expect(result).toMatchObject({ termination: 'exited', exitCode: 0, stdout: 'answered\n' });
    expect(await readFile(join(dir, 'received'), 'utf8')).toBe('the request');
    expect(started.waiting).toBe(false);
    expect(() => started.run(runSpec())).toThrow(/already handed a request/);
  });

  it('never writes the request to a process whose execution was canceled before the hand-over', async () => {
    const started = startSandboxProcess(launch('cat > received; sleep 5'));
    const controller = new AbortController();
    controller.abort('canceled');
    const result = await started.run(runSpec(controller.signal));
    expect(result.termination).toBe('canceled');
    expect(await readFile(join(dir, 'received'), 'utf8').catch(() => '')).toBe('');
  });

  it('ends the process at the last line of its answer instead of waiting for it to exit; teardown waits for it', async () => {
    const started = startSandboxProcess(launch('echo $$ > pid; cat > /dev/null; echo "<<<END>>>"; sleep 30'));
    const begin = Date.now();
    const result = await started.run({ ...runSpec(), endMarker: '<<<END>>>\n', awaitTeardown: false });
    expect(Date.now() - begin).toBeLessThan(10_000);
    // Resolved at the answer, before the kill is reaped: no exit status to report.
    expect(result).toMatchObject({ termination: 'exited', exitCode: null, signal: null, stdout: '<<<END>>>\n' });
    await result.teardown;
    const pid = Number(await readFile(join(dir, 'pid'), 'utf8'));
    expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  });

  it('reports a process that died while waiting as no longer waiting, and says when it ended', async () => {
    const started = startSandboxProcess(launch('exit 3'));
    const ended = new Promise<void>((resolve) => started.onEnded(resolve));
    await ended;
    expect(started.waiting).toBe(false);
    const result = await started.run(runSpec());
    expect(result).toMatchObject({ termination: 'exited', exitCode: 3, runnerStarted: false });
  });

  it('discard() kills a waiting process', async () => {
    const started = startSandboxProcess(launch('cat > received'));
    await started.discard();
    expect(started.waiting).toBe(false);
  });
});
