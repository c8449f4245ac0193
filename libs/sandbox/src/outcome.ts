import type { CapturedLogs, JsonObject, NodeError, RunnerResponse } from '@podflow/protocol';
import { constants } from 'node:os';
import type { SandboxProcessResult } from './process/sandbox-process';

/** What the driver knows about an execution when it classifies how it ended. */
export interface OutcomeContext {
  timeoutMs: number;
  /** The binary that was spawned (for spawn failures). */
  command: string;
  /** bwrap reports a signal death of the code as exit code 128 + signal. */
  bubblewrap: boolean;
  memoryLimitBytes: number;
  maxFileSizeBytes: number;
  stdoutCapBytes: number;
  maxLogBytes: number;
  /** The execution's memory cgroup saw the kernel's OOM killer (per-execution cgroups only). */
  oomKilled?: boolean;
}

export interface ClassifiedOutcome {
  status: 'succeeded' | 'failed';
  output?: JsonObject;
  error?: NodeError;
  logs: CapturedLogs;
}

/** Stderr kept in `error.details` (the full tail is in `logs.stderr`). */
const DETAILS_STDERR_BYTES = 8 * 1024;

/** Marks of a process that ran out of memory, in what interpreters print on the way down. */
const MEMORY_MARKERS = [
  /JavaScript heap out of memory/,
  /Fatal process OOM/,
  /\bMemoryError\b/,
  /Array buffer allocation failed/,
  /std::bad_alloc/,
  /Cannot allocate memory/,
  /\bout of memory\b/i,
];

/**
 * Turns the end of a sandbox process plus the runner's response (if one was framed on stdout)
 * into the node's result. Pure: every branch is unit-tested with plain fixtures.
 */
export function classifyOutcome(run: SandboxProcessResult, response: RunnerResponse | undefined, ctx: OutcomeContext): ClassifiedOutcome {
  if (run.termination === 'canceled') return failed({ code: 'CANCELED', message: 'execution canceled' }, run, ctx, response);
  if (run.termination === 'timeout' && !response) {
    const seconds = Number((ctx.timeoutMs / 1000).toFixed(3));
    return failed({ code: 'EXECUTION_TIMEOUT', message: `main did not return within ${seconds}s (node timeout); the sandbox was killed` }, run, ctx);
  }
  if (run.termination === 'output-too-large') {
    return failed(
      {
        code: 'OUTPUT_TOO_LARGE',
        message:
          `the sandbox wrote more than ${ctx.stdoutCapBytes} bytes to stdout (the result plus anything written ` +
          'straight to file descriptor 1), so it was killed; return a smaller object from main and write large data ' +
          'to a file under /home/user',
      },
      run,
      ctx,
    );
  }
  if (run.termination === 'spawn-failed') {
    return failed(
      {
        code: 'SANDBOX_LOST',
        message: `could not start the sandbox: \`${ctx.command}\` failed to spawn (${run.spawnError ?? 'unknown error'}); install it or fix the driver's binary path`,
      },
      run,
      ctx,
    );
  }
  if (response) return fromResponse(response, ctx);
  return fromSilentExit(run, ctx);
}

function fromResponse(response: RunnerResponse, ctx: OutcomeContext): ClassifiedOutcome {
  if (response.ok) return { status: 'succeeded', output: response.output, logs: response.logs };
  const error = response.error;
  if (error.code === 'CODE_EXECUTION_FAILED' && isMemoryException(error)) {
    return {
      status: 'failed',
      logs: response.logs,
      error: { ...error, code: 'MEMORY_LIMIT_EXCEEDED', message: `${memoryMessage(ctx)}: ${[error.type ?? 'Error', error.message].filter(Boolean).join(': ')}` },
    };
  }
  return { status: 'failed', error, logs: response.logs };
}

function isMemoryException(error: NodeError): boolean {
  if (error.type === 'MemoryError') return true;
  return error.type === 'RangeError' && /allocation failed|out of memory/i.test(error.message);
}

function fromSilentExit(run: SandboxProcessResult, ctx: OutcomeContext): ClassifiedOutcome {
  const signal = signalOf(run, ctx);
  const details = { exitCode: run.exitCode, signal, stderrTail: tail(run.stderrTail, Math.min(ctx.maxLogBytes, DETAILS_STDERR_BYTES)) };
  const setupFailure = wrapperFailure(run, ctx);
  if (setupFailure) return failed({ code: 'SANDBOX_LOST', message: setupFailure, details }, run, ctx);
  const marker = memoryMarkerLine(run.stderrTail);
  // Nothing but the kernel's OOM killer (or the code itself) SIGKILLs a runner we did not kill.
  if (signal === 'SIGKILL' || marker || ctx.oomKilled) {
    const how = signal ? `killed by ${signal}` : `exited with code ${run.exitCode}`;
    const said = marker ? ` (${marker})` : '';
    return failed({ code: 'MEMORY_LIMIT_EXCEEDED', message: `${memoryMessage(ctx)}; the runner was ${how}${said}`, details }, run, ctx);
  }
  if (signal === 'SIGXFSZ') {
    return failed(
      {
        code: 'CODE_EXECUTION_FAILED',
        message: `the code wrote a file larger than the limit of ${ctx.maxFileSizeBytes} bytes and was killed (SIGXFSZ)`,
        details,
      },
      run,
      ctx,
    );
  }
  const message = signal
    ? `the runner was killed by ${signal} before returning a result${signal === 'SIGSEGV' ? ` (a crash in native code, or native code that ignored a failed allocation under the ${memoryLimitMiB(ctx)} MiB memory limit)` : ''}`
    : `the runner exited with code ${run.exitCode} before returning a result`;
  return failed({ code: 'CODE_EXECUTION_FAILED', message, details }, run, ctx);
}

/**
 * A failure of the wrappers before the runner started (a missing interpreter, a bind source that
 * is gone): an infrastructure problem, so SANDBOX_LOST (retried) with the wrapper's own words.
 */
function wrapperFailure(run: SandboxProcessResult, ctx: OutcomeContext): string | undefined {
  const prlimit = /^prlimit: (failed to execute .*)$/m.exec(run.stderrTail);
  if (prlimit && (run.exitCode === 126 || run.exitCode === 127)) return `could not start the sandbox: prlimit ${prlimit[1]}`;
  const bwrap = ctx.bubblewrap && run.exitCode === 1 ? /^bwrap: (.*)$/m.exec(run.stderrTail) : null;
  if (bwrap) return `bubblewrap could not set up the sandbox: ${bwrap[1]}`;
  return undefined;
}

function memoryMessage(ctx: OutcomeContext): string {
  return `the code ran out of memory (limit ${memoryLimitMiB(ctx)} MiB)`;
}

function memoryLimitMiB(ctx: OutcomeContext): number {
  return Math.round(ctx.memoryLimitBytes / (1024 * 1024));
}

/** The stderr line that says the process ran out of memory, if any. */
function memoryMarkerLine(stderr: string): string | undefined {
  for (const line of stderr.split('\n')) {
    if (MEMORY_MARKERS.some((marker) => marker.test(line))) return line.trim().slice(0, 200);
  }
  return undefined;
}

/** The signal that ended the code: Node's own report, or bwrap's exit code 128 + N. */
function signalOf(run: SandboxProcessResult, ctx: OutcomeContext): NodeJS.Signals | null {
  if (run.signal) return run.signal;
  if (!ctx.bubblewrap || run.exitCode === null || run.exitCode <= 128) return null;
  const number = run.exitCode - 128;
  const name = Object.entries(constants.signals).find(([, value]) => value === number)?.[0];
  return (name as NodeJS.Signals | undefined) ?? null;
}

function failed(error: NodeError, run: SandboxProcessResult, ctx: OutcomeContext, response?: RunnerResponse): ClassifiedOutcome {
  if (response) return { status: 'failed', error, logs: response.logs };
  const stdout = tail(run.stdout, ctx.maxLogBytes);
  const stderr = tail(run.stderrTail, ctx.maxLogBytes);
  const truncated = run.stderrTruncated || stdout.length < run.stdout.length || stderr.length < run.stderrTail.length;
  return { status: 'failed', error, logs: { stdout, stderr, truncated } };
}

function tail(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  // Cutting bytes may split a character; drop the partial one at the start.
  return bytes.subarray(bytes.length - maxBytes).toString('utf8').replace(/^\uFFFD+/, '');
}
