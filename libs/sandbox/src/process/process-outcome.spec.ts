import type { RunnerResponse } from '@podflow/protocol';
import { classifyOutcome, type OutcomeContext } from './process-outcome';
import type { SandboxProcessResult } from './sandbox-process';

const ctx: OutcomeContext = {
  timeoutMs: 2_500,
  command: '/usr/bin/prlimit',
  bubblewrap: true,
  memoryLimitBytes: 512 * 1024 * 1024,
  maxFileSizeBytes: 1024,
  stdoutCapBytes: 1000,
  maxLogBytes: 64,
};

function run(overrides: Partial<SandboxProcessResult> = {}): SandboxProcessResult {
  return { termination: 'exited', exitCode: 0, signal: null, stdout: '', stderrTail: '', stderrTruncated: false, runnerStarted: false, durationMs: 5, teardown: Promise.resolve(), ...overrides };
}

const logs = { stdout: 'printed', stderr: '', truncated: false };
const ok: RunnerResponse = { ok: true, output: { a: 1 }, files: [], logs, durationMs: 3 };

describe('classifyOutcome', () => {
  it('passes a successful response through', () => {
    expect(classifyOutcome(run(), ok, ctx)).toEqual({ status: 'succeeded', output: { a: 1 }, logs });
  });

  it('passes a failed response through', () => {
    const error = { code: 'CODE_EXECUTION_FAILED' as const, message: 'boom', type: 'ValueError' };
    expect(classifyOutcome(run(), { ok: false, error, files: [], logs, durationMs: 1 }, ctx)).toEqual({ status: 'failed', error, logs });
  });

  it('reports a Python MemoryError and a failed ArrayBuffer allocation as MEMORY_LIMIT_EXCEEDED', () => {
    const python = classifyOutcome(run(), { ok: false, error: { code: 'CODE_EXECUTION_FAILED', message: '', type: 'MemoryError', stack: 's' }, files: [], logs, durationMs: 1 }, ctx);
    expect(python.error).toEqual({ code: 'MEMORY_LIMIT_EXCEEDED', message: 'the code ran out of memory (limit 512 MiB): MemoryError', type: 'MemoryError', stack: 's' });
    const js = classifyOutcome(
      run(),
      { ok: false, error: { code: 'CODE_EXECUTION_FAILED', message: 'Array buffer allocation failed', type: 'RangeError' }, files: [], logs, durationMs: 1 },
      ctx,
    );
    expect(js.error?.code).toBe('MEMORY_LIMIT_EXCEEDED');
    const other = classifyOutcome(run(), { ok: false, error: { code: 'CODE_EXECUTION_FAILED', message: 'Invalid array length', type: 'RangeError' }, files: [], logs, durationMs: 1 }, ctx);
    expect(other.error?.code).toBe('CODE_EXECUTION_FAILED');
  });

  it('names the node timeout in seconds', () => {
    const outcome = classifyOutcome(run({ termination: 'timeout', exitCode: null, signal: 'SIGKILL' }), undefined, ctx);
    expect(outcome.error).toEqual({ code: 'EXECUTION_TIMEOUT', message: 'main did not return within 2.5s (node timeout); the sandbox was killed' });
  });

  it('keeps a complete response that raced the timeout', () => {
    expect(classifyOutcome(run({ termination: 'timeout' }), ok, ctx).status).toBe('succeeded');
  });

  it('reports a cancel as CANCELED even when a response arrived', () => {
    expect(classifyOutcome(run({ termination: 'canceled' }), ok, ctx).error).toEqual({ code: 'CANCELED', message: 'execution canceled' });
  });

  it('reports a stdout overflow as OUTPUT_TOO_LARGE', () => {
    const outcome = classifyOutcome(run({ termination: 'output-too-large', signal: 'SIGKILL', exitCode: null }), undefined, ctx);
    expect(outcome.error?.code).toBe('OUTPUT_TOO_LARGE');
    expect(outcome.error?.message).toContain('more than 1000 bytes');
  });

  it('reports a spawn failure as SANDBOX_LOST naming the binary', () => {
    const outcome = classifyOutcome(run({ termination: 'spawn-failed', exitCode: null, spawnError: 'ENOENT' }), undefined, ctx);
    expect(outcome.error?.code).toBe('SANDBOX_LOST');
    expect(outcome.error?.message).toContain('`/usr/bin/prlimit` failed to spawn (ENOENT)');
  });

  it('reports wrapper failures (bwrap setup, prlimit exec) as SANDBOX_LOST in their own words', () => {
    const bwrap = classifyOutcome(run({ exitCode: 1, stderrTail: 'bwrap: execvp /opt/py/bin/python3: No such file or directory\n' }), undefined, ctx);
    expect(bwrap.error).toMatchObject({ code: 'SANDBOX_LOST', message: 'bubblewrap could not set up the sandbox: execvp /opt/py/bin/python3: No such file or directory' });
    const prlimit = classifyOutcome(run({ exitCode: 127, stderrTail: 'prlimit: failed to execute /x/python3: No such file or directory\n' }), undefined, { ...ctx, bubblewrap: false });
    expect(prlimit.error).toMatchObject({ code: 'SANDBOX_LOST', message: 'could not start the sandbox: prlimit failed to execute /x/python3: No such file or directory' });
  });

  it('never blames the wrappers once the runner had its request: the code printing a bwrap error is the code failing', () => {
    const forged = classifyOutcome(run({ exitCode: 1, stderrTail: "bwrap: Can't mount proc on /newroot/proc\n", runnerStarted: true }), undefined, ctx);
    expect(forged.error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', message: 'the runner exited with code 1 before returning a result' });
    const launch = classifyOutcome(run({ exitCode: 125, stderrTail: 'podflow-launch: cannot join cgroup x\n', runnerStarted: true }), undefined, ctx);
    expect(launch.error?.code).toBe('CODE_EXECUTION_FAILED');
  });

  it('reports a V8 heap death (bwrap exit 128 + SIGABRT) as MEMORY_LIMIT_EXCEEDED', () => {
    const stderrTail = '<--- JS stacktrace --->\n\nFATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n 1: 0xb78db3 node::OOMErrorHandler\n';
    const outcome = classifyOutcome(run({ exitCode: 134, stderrTail }), undefined, ctx);
    expect(outcome.error?.code).toBe('MEMORY_LIMIT_EXCEEDED');
    expect(outcome.error?.message).toBe(
      'the code ran out of memory (limit 512 MiB); the runner was killed by SIGABRT (FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory)',
    );
    expect(outcome.error?.details).toMatchObject({ exitCode: 134, signal: 'SIGABRT' });
  });

  it('reports a SIGKILL it did not send as MEMORY_LIMIT_EXCEEDED (the OOM killer)', () => {
    expect(classifyOutcome(run({ exitCode: null, signal: 'SIGKILL' }), undefined, { ...ctx, bubblewrap: false }).error?.code).toBe('MEMORY_LIMIT_EXCEEDED');
    expect(classifyOutcome(run({ exitCode: 137 }), undefined, ctx).error?.code).toBe('MEMORY_LIMIT_EXCEEDED');
  });

  it('asks the cgroup when there is one: a SIGKILL without an OOM kill is the code killing itself', () => {
    expect(classifyOutcome(run({ exitCode: 137 }), undefined, { ...ctx, oomKilled: false }).error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', message: 'the runner was killed by SIGKILL before returning a result' });
    expect(classifyOutcome(run({ exitCode: 1 }), undefined, { ...ctx, oomKilled: true }).error?.code).toBe('MEMORY_LIMIT_EXCEEDED');
  });

  it('explains SIGXFSZ with the file size limit', () => {
    const outcome = classifyOutcome(run({ exitCode: 128 + 25 }), undefined, ctx);
    expect(outcome.error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', message: 'the code wrote a file larger than the limit of 1024 bytes and was killed (SIGXFSZ)' });
  });

  it('reports any other silent exit as CODE_EXECUTION_FAILED with the stderr tail', () => {
    const stderrTail = `${'x'.repeat(100)}Traceback: runner bug\n`;
    const outcome = classifyOutcome(run({ exitCode: 3, stderrTail, stdout: 'partial' }), undefined, ctx);
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', message: 'the runner exited with code 3 before returning a result' });
    expect(outcome.error?.details?.stderrTail).toBe(stderrTail.slice(-64));
    expect(outcome.logs).toEqual({ stdout: 'partial', stderr: stderrTail.slice(-64), truncated: true });
  });

  it('does not read bwrap-style exit codes as signals without bubblewrap', () => {
    const outcome = classifyOutcome(run({ exitCode: 139 }), undefined, { ...ctx, bubblewrap: false });
    expect(outcome.error?.message).toBe('the runner exited with code 139 before returning a result');
    const crashed = classifyOutcome(run({ exitCode: 139 }), undefined, ctx);
    expect(crashed.error?.message).toMatch(/^the runner was killed by SIGSEGV before returning a result \(a crash in native code/);
  });
});
