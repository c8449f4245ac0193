import type { CapturedLogs, ErrorCode, JsonObject, NodeError, RunnerResponse } from '@podflow/protocol';

/**
 * The one place where the end of a sandbox becomes a node result, for both drivers. A driver
 * says *how* its sandbox ended, in its own terms translated to a `SandboxEnding` (a process exit
 * code and signal, a pod's container state); this module decides the error code and writes the
 * message. So the rules hold everywhere: a timeout is EXECUTION_TIMEOUT, the OOM killer is
 * MEMORY_LIMIT_EXCEEDED, a sandbox that vanished is SANDBOX_LOST (retried), and every ending
 * yields exactly one result.
 */
export type SandboxEnding =
  /** The runner answered (success or a failure of the code); a later kill does not change that. */
  | { kind: 'answered'; response: RunnerResponse }
  | { kind: 'canceled'; detail?: string }
  /** Killed at the node timeout (`detail` says what was killed, e.g. "the pod was deleted"). */
  | { kind: 'timeout'; timeoutMs: number; detail?: string }
  | { kind: 'output-too-large'; capBytes: number; what: string }
  /** An answer was found but not parsed: over what any runner writes (the code can write answers too). */
  | { kind: 'answer-refused'; detail: string }
  /** The sandbox never started: a binary, a wrapper, a mount (SANDBOX_LOST, retried). */
  | { kind: 'start-failed'; message: string; details?: Record<string, unknown> }
  /** The sandbox did not become ready in time (SANDBOX_START_TIMEOUT, retried). */
  | { kind: 'start-timeout'; message: string }
  /** The sandbox went away under the code: deleted, evicted, disconnected (SANDBOX_LOST, retried). */
  | { kind: 'lost'; message: string; details?: Record<string, unknown> }
  /** Killed for memory: by the kernel's OOM killer, or the interpreter's own heap limit. */
  | { kind: 'out-of-memory'; how: string; details?: Record<string, unknown> }
  | { kind: 'file-too-large'; limitBytes: number; details?: Record<string, unknown> }
  /** The runner died without an answer for another reason (a crash, `os._exit`, a native fault). */
  | { kind: 'crashed'; how: string; details?: Record<string, unknown> };

/** An answer a driver found and did not parse (`readRunnerResponse` in @podflow/runner says why). */
export interface RefusedAnswer {
  refused: string;
}

export interface ClassifiedOutcome {
  status: 'succeeded' | 'failed';
  output?: JsonObject;
  error?: NodeError;
  logs: CapturedLogs;
}

export interface EndingContext {
  memoryLimitBytes: number;
  /** What the sandbox printed, for endings without a runner answer (an answer carries its own). */
  logs: CapturedLogs;
  /** The execution's log limit, applied again to an answer (which the code could have written). */
  maxLogBytes: number;
}

/**
 * The error codes a runner reports (both runners). The runner shares its process with the user's
 * code, which can find the nonce and write an answer of its own: any other code in an answer is
 * the code's doing, and taking it would let a tenant pass for the platform (SANDBOX_LOST is
 * retried whatever the node asks, and shows up as an infrastructure failure).
 */
export const RUNNER_ERROR_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['CODE_EXECUTION_FAILED', 'OUTPUT_INVALID', 'OUTPUT_TOO_LARGE', 'FILES_TOO_LARGE', 'INPUT_BINDING_FAILED', 'INTERNAL']);

/** The node result of a sandbox ending. Pure and exhaustive: a new ending kind must be placed. */
export function classifyEnding(ending: SandboxEnding, ctx: EndingContext): ClassifiedOutcome {
  const failed = (error: NodeError): ClassifiedOutcome => ({ status: 'failed', error, logs: ctx.logs });
  switch (ending.kind) {
    case 'answered':
      return fromResponse(ending.response, ctx);
    case 'canceled':
      return failed({ code: 'CANCELED', message: ending.detail ? `execution canceled; ${ending.detail}` : 'execution canceled' });
    case 'timeout': {
      const seconds = Number((ending.timeoutMs / 1000).toFixed(3));
      return failed({ code: 'EXECUTION_TIMEOUT', message: `main did not return within ${seconds}s (node timeout); ${ending.detail ?? 'the sandbox was killed'}` });
    }
    case 'output-too-large':
      return failed({
        code: 'OUTPUT_TOO_LARGE',
        message: `the sandbox wrote more than ${ending.capBytes} bytes of ${ending.what}, so it was killed; return a smaller object from main and write large data to a file under /home/user`,
      });
    case 'answer-refused':
      return failed({
        code: 'OUTPUT_TOO_LARGE',
        message: `the sandbox's answer was refused before it was read: ${ending.detail}; return a smaller object from main and write large data to a file under /home/user`,
      });
    case 'start-failed':
      return failed({ code: 'SANDBOX_LOST', message: ending.message, ...(ending.details ? { details: ending.details } : {}) });
    case 'start-timeout':
      return failed({ code: 'SANDBOX_START_TIMEOUT', message: ending.message });
    case 'lost':
      return failed({ code: 'SANDBOX_LOST', message: ending.message, ...(ending.details ? { details: ending.details } : {}) });
    case 'out-of-memory':
      return failed({ code: 'MEMORY_LIMIT_EXCEEDED', message: `${memoryMessage(ctx)}; ${ending.how}`, ...(ending.details ? { details: ending.details } : {}) });
    case 'file-too-large':
      return failed({
        code: 'CODE_EXECUTION_FAILED',
        message: `the code wrote a file larger than the limit of ${ending.limitBytes} bytes and was killed (SIGXFSZ)`,
        ...(ending.details ? { details: ending.details } : {}),
      });
    case 'crashed':
      return failed({ code: 'CODE_EXECUTION_FAILED', message: ending.how, ...(ending.details ? { details: ending.details } : {}) });
  }
}

/**
 * A runner answer, held to what a runner can say: logs within `maxLogBytes` (the tail kept) and an
 * error code from RUNNER_ERROR_CODES; an exception that means "out of memory" becomes
 * MEMORY_LIMIT_EXCEEDED.
 */
function fromResponse(response: RunnerResponse, ctx: EndingContext): ClassifiedOutcome {
  const logs = boundedLogs(response.logs, ctx.maxLogBytes);
  // The output is not measured again: Python writes some numbers shorter than JavaScript does
  // (1e+16), so a second count here could refuse what the runner rightly let through. A forged
  // answer was held to responseBounds (@podflow/runner) before it was parsed.
  if (response.ok) return { status: 'succeeded', output: response.output, logs };
  const error = response.error;
  if (!RUNNER_ERROR_CODES.has(error.code)) {
    return {
      status: 'failed',
      logs,
      error: {
        code: 'CODE_EXECUTION_FAILED',
        message: `the sandbox answered with error code ${JSON.stringify(String(error.code)).slice(0, 80)}, which only the platform can report: the answer was written by the code, not by podflow's runner`,
        details: { reportedCode: String(error.code).slice(0, 80) },
      },
    };
  }
  if (error.code === 'CODE_EXECUTION_FAILED' && isMemoryException(error)) {
    return {
      status: 'failed',
      logs,
      error: { ...error, code: 'MEMORY_LIMIT_EXCEEDED', message: `${memoryMessage(ctx)}: ${[error.type ?? 'Error', error.message].filter(Boolean).join(': ')}` },
    };
  }
  return { status: 'failed', error, logs };
}

/** Each stream's last `maxBytes` bytes (whole characters), `truncated` when anything was cut. */
function boundedLogs(logs: CapturedLogs, maxBytes: number): CapturedLogs {
  const stdout = lastBytes(String(logs?.stdout ?? ''), maxBytes);
  const stderr = lastBytes(String(logs?.stderr ?? ''), maxBytes);
  const cut = stdout.length !== String(logs?.stdout ?? '').length || stderr.length !== String(logs?.stderr ?? '').length;
  return { stdout, stderr, truncated: logs?.truncated === true || cut };
}

/** The end of `text` within `maxBytes` bytes of UTF-8, without a character cut in half. */
export function lastBytes(text: string, maxBytes: number): string {
  // A UTF-16 unit is at most 3 bytes of UTF-8: shorter strings are within the limit as they are.
  if (text.length * 3 <= maxBytes) return text;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  return bytes.subarray(bytes.length - maxBytes).toString('utf8').replace(/^\uFFFD+/, '');
}

function isMemoryException(error: NodeError): boolean {
  if (error.type === 'MemoryError') return true;
  return error.type === 'RangeError' && /allocation failed|out of memory/i.test(error.message);
}

function memoryMessage(ctx: EndingContext): string {
  return `the code ran out of memory (limit ${Math.round(ctx.memoryLimitBytes / (1024 * 1024))} MiB)`;
}
