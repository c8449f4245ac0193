import type { RunnerResponse } from '@podflow/protocol';
import { classifyEnding, type SandboxEnding } from './outcome';

const logs = { stdout: '', stderr: 'tail', truncated: false };
const ctx = { memoryLimitBytes: 256 * 1024 * 1024, logs };

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
    expect(oom.logs).toBe(answerLogs);
  });
});
