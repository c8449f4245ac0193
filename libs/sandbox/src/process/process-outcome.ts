import type { CapturedLogs, RunnerResponse } from '@podflow/protocol';
import { constants } from 'node:os';
import { classifyEnding, lastBytes, type ClassifiedOutcome, type RefusedAnswer, type SandboxEnding } from '../outcome';
import { LAUNCH_SETUP_FAILED_EXIT } from './launch';
import type { SandboxProcessResult } from './sandbox-process';

/** What the process driver knows about an execution when it says how it ended. */
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
  /**
   * Whether the execution's memory cgroup saw the kernel's OOM killer; `undefined` without
   * per-execution cgroups, where a SIGKILL nobody sent is taken for the OOM killer.
   */
  oomKilled?: boolean;
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

/** The node result of a sandbox process plus the runner's response (if one was framed on stdout). */
export function classifyOutcome(run: SandboxProcessResult, response: RunnerResponse | RefusedAnswer | undefined, ctx: OutcomeContext): ClassifiedOutcome {
  return classifyEnding(processEnding(run, response, ctx), { memoryLimitBytes: ctx.memoryLimitBytes, logs: silentLogs(run, ctx), maxLogBytes: ctx.maxLogBytes });
}

/** How a sandbox process ended, in the shared vocabulary. Pure: unit-tested with plain fixtures. */
export function processEnding(run: SandboxProcessResult, response: RunnerResponse | RefusedAnswer | undefined, ctx: OutcomeContext): SandboxEnding {
  if (run.termination === 'canceled') return { kind: 'canceled' };
  if (run.termination === 'timeout' && !response) return { kind: 'timeout', timeoutMs: ctx.timeoutMs };
  if (run.termination === 'output-too-large') {
    return { kind: 'output-too-large', capBytes: ctx.stdoutCapBytes, what: 'output on stdout (the result plus anything written straight to file descriptor 1)' };
  }
  if (run.termination === 'spawn-failed') {
    return { kind: 'start-failed', message: `could not start the sandbox: \`${ctx.command}\` failed to spawn (${run.spawnError ?? 'unknown error'}); install it or fix the driver's binary path` };
  }
  if (response && 'refused' in response) return { kind: 'answer-refused', detail: response.refused };
  if (response) return { kind: 'answered', response };
  return silentExit(run, ctx);
}

function silentExit(run: SandboxProcessResult, ctx: OutcomeContext): SandboxEnding {
  const signal = signalOf(run, ctx);
  const details = { exitCode: run.exitCode, signal, stderrTail: lastBytes(run.stderrTail, Math.min(ctx.maxLogBytes, DETAILS_STDERR_BYTES)) };
  const setupFailure = wrapperFailure(run, ctx);
  if (setupFailure) return { kind: 'start-failed', message: setupFailure, details };
  const marker = memoryMarkerLine(run.stderrTail);
  // Without a cgroup to ask, nothing but the OOM killer (or the code itself) SIGKILLs a runner we did not kill.
  const oom = ctx.oomKilled ?? signal === 'SIGKILL';
  if (oom || marker) {
    const how = signal ? `killed by ${signal}` : `exited with code ${run.exitCode}`;
    return { kind: 'out-of-memory', how: `the runner was ${how}${marker ? ` (${marker})` : ''}`, details };
  }
  if (signal === 'SIGXFSZ') return { kind: 'file-too-large', limitBytes: ctx.maxFileSizeBytes, details };
  const how = signal
    ? `the runner was killed by ${signal} before returning a result${signal === 'SIGSEGV' ? ` (a crash in native code, or native code that ignored a failed allocation under the ${Math.round(ctx.memoryLimitBytes / (1024 * 1024))} MiB memory limit)` : ''}`
    : `the runner exited with code ${run.exitCode} before returning a result`;
  return { kind: 'crashed', how, details };
}

/**
 * A failure of the wrappers before the runner started (a missing interpreter, a bind source that
 * is gone, a cgroup or namespace that could not be joined): an infrastructure problem, reported
 * with the wrapper's own words. Never once the runner said it had its request: from then on the
 * code may have run and printed anything, including a wrapper's words to be retried as
 * SANDBOX_LOST.
 */
function wrapperFailure(run: SandboxProcessResult, ctx: OutcomeContext): string | undefined {
  if (run.runnerStarted) return undefined;
  const prlimit = /^prlimit: (failed to execute .*)$/m.exec(run.stderrTail);
  if (prlimit && (run.exitCode === 126 || run.exitCode === 127)) return `could not start the sandbox: prlimit ${prlimit[1]}`;
  const launch = run.exitCode === LAUNCH_SETUP_FAILED_EXIT ? /^podflow-launch: (.*)$/m.exec(run.stderrTail) : null;
  if (launch) return `could not start the sandbox: ${launch[1]}`;
  const wrapper = run.exitCode === 1 ? /^(nsenter|setpriv): (.*)$/m.exec(run.stderrTail) : null;
  if (wrapper) return `could not start the sandbox: ${wrapper[1]} failed: ${wrapper[2]}`;
  const bwrap = ctx.bubblewrap && run.exitCode === 1 ? /^bwrap: (.*)$/m.exec(run.stderrTail) : null;
  if (bwrap) return `bubblewrap could not set up the sandbox: ${bwrap[1]}`;
  return undefined;
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

/** What the process printed, bounded: the logs of an ending without a runner answer. */
function silentLogs(run: SandboxProcessResult, ctx: OutcomeContext): CapturedLogs {
  const stdout = lastBytes(run.stdout, ctx.maxLogBytes);
  const stderr = lastBytes(run.stderrTail, ctx.maxLogBytes);
  const truncated = run.stderrTruncated || stdout.length < run.stdout.length || stderr.length < run.stderrTail.length;
  return { stdout, stderr, truncated };
}

