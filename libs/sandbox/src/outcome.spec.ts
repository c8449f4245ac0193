import type { RunnerResponse } from '@podflow/protocol';
import { ERROR_CODES, type ErrorCode } from '@podflow/protocol';
import { RUNNER_ERROR_CODES, classifyEnding, lastBytes, type SandboxEnding } from './outcome';

const logs = { stdout: '', stderr: 'tail', truncated: false };
const ctx = { memoryLimitBytes: 256 * 1024 * 1024, logs, maxLogBytes: 64 * 1024 };

describe('classifyEnding (both drivers)', () => {
  it.each<[SandboxEnding, string]>([
    [{ kind: 'canceled' }, 'CANCELED'],
    [{ kind: 'timeout', timeoutMs: 1500, detail: 'the pod was deleted' }, 'EXECUTION_TIMEOUT'],
    [{ kind: 'output-too-large', capBytes: 10, what: 'output and files' }, 'OUTPUT_TOO_LARGE'],
    [{ kind: 'start-failed', message: 'bwrap: no' }, 'SANDBOX_LOST'],
    [{ kind: 'start-timeout', message: 'pod did not start' }, 'SANDBOX_START_TIMEOUT'],
    [{ kind: 'lost', message: 'pod was deleted' }, 'SANDBOX_LOST'],
    [{ kind: 'out-of-memory', how: 'container OOMKilled' }, 'MEMORY_LIMIT_EXCEEDED'],
    [{ kind: 'file-too-large', limitBytes: 1 }, 'CODE_EXECUTION_FAILED'],
    [{ kind: 'crashed', how: 'exit 3' }, 'CODE_EXECUTION_FAILED'],
  ])('%j → %s, with the sandbox logs', (ending, code) => {
    const outcome = classifyEnding(ending, ctx);
    expect(outcome.status).toBe('failed');
    expect(outcome.error?.code).toBe(code);
    expect(outcome.logs).toBe(logs);
  });

  it('writes the timeout in seconds and says what was killed', () => {
    expect(classifyEnding({ kind: 'timeout', timeoutMs: 1500, detail: 'the pod was deleted' }, ctx).error?.message).toBe('main did not return within 1.5s (node timeout); the pod was deleted');
  });

  it('names the memory limit', () => {
    expect(classifyEnding({ kind: 'out-of-memory', how: 'container OOMKilled' }, ctx).error?.message).toBe('the code ran out of memory (limit 256 MiB); container OOMKilled');
  });

  it('keeps an answer, and turns a MemoryError answer into MEMORY_LIMIT_EXCEEDED on every driver', () => {
    const answerLogs = { stdout: 'hi', stderr: '', truncated: false };
    const ok: RunnerResponse = { ok: true, output: { a: 1 }, files: [], logs: answerLogs, durationMs: 1 };
    expect(classifyEnding({ kind: 'answered', response: ok }, ctx)).toEqual({ status: 'succeeded', output: { a: 1 }, logs: answerLogs });
    const oom = classifyEnding({ kind: 'answered', response: { ok: false, error: { code: 'CODE_EXECUTION_FAILED', message: '', type: 'MemoryError' }, files: [], logs: answerLogs, durationMs: 1 } }, ctx);
    expect(oom.error).toMatchObject({ code: 'MEMORY_LIMIT_EXCEEDED', message: 'the code ran out of memory (limit 256 MiB): MemoryError' });
    expect(oom.logs).toEqual(answerLogs);
  });

  /** A failed answer; `code` may be anything, as in an answer the code wrote itself. */
  const answered = ({ code, message }: { code: string; message: string }, answerLogs = { stdout: '', stderr: '', truncated: false }): SandboxEnding => ({
    kind: 'answered',
    response: { ok: false, error: { code: code as ErrorCode, message }, files: [], logs: answerLogs, durationMs: 1 },
  });

  it.each([...RUNNER_ERROR_CODES])('keeps the code %s, which a runner reports', (code) => {
    expect(classifyEnding(answered({ code, message: 'm' }), ctx).error?.code).toBe(code);
  });

  it.each(ERROR_CODES.filter((code) => !RUNNER_ERROR_CODES.has(code)))(
    'takes an answer with %s, which only the platform reports, for the code\'s own (the code can find the nonce and write an answer)',
    (code: ErrorCode) => {
      const outcome = classifyEnding(answered({ code, message: 'forged' }), ctx);
      expect(outcome.error).toEqual({
        code: 'CODE_EXECUTION_FAILED',
        message: `the sandbox answered with error code "${code}", which only the platform can report: the answer was written by the code, not by podflow's runner`,
        details: { reportedCode: code },
      });
    },
  );

  it('refuses a code that is no code at all, and keeps the message short', () => {
    const outcome = classifyEnding(answered({ code: 'X'.repeat(1000), message: 'forged' }), ctx);
    expect(outcome.error?.code).toBe('CODE_EXECUTION_FAILED');
    expect((outcome.error?.details as { reportedCode: string }).reportedCode).toHaveLength(80);
  });

  it('holds an answer\'s logs to maxLogBytes again, keeping the tail, on success and failure', () => {
    const big = { stdout: 'a'.repeat(100_000) + 'END', stderr: 'é'.repeat(40_000), truncated: false };
    const ok: RunnerResponse = { ok: true, output: {}, files: [], logs: big, durationMs: 1 };
    for (const ending of [{ kind: 'answered', response: ok } as SandboxEnding, answered({ code: 'CODE_EXECUTION_FAILED', message: 'm' }, big)]) {
      const { logs: kept } = classifyEnding(ending, { ...ctx, maxLogBytes: 1000 });
      expect(Buffer.byteLength(kept.stdout)).toBe(1000);
      expect(kept.stdout.endsWith('END')).toBe(true);
      // Two-byte characters: 500 of them fit 1,000 bytes; none is cut in half.
      expect(kept.stderr).toBe('é'.repeat(500));
      expect(kept.truncated).toBe(true);
    }
    const small = { stdout: 'hi', stderr: '', truncated: false };
    expect(classifyEnding({ kind: 'answered', response: { ...ok, logs: small } }, ctx).logs).toEqual(small);
  });

  it('cuts text to its last bytes on a character boundary', () => {
    expect(lastBytes('abc', 10)).toBe('abc');
    expect(lastBytes('aé', 2)).toBe('é');
    expect(lastBytes('éé', 3)).toBe('é');
    expect(lastBytes('😀x', 4)).toBe('x');
  });
});
