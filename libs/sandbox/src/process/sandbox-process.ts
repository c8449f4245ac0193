import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';

/** Why the sandbox process ended. The first cause recorded wins (a timeout stays a timeout). */
export type Termination = 'exited' | 'timeout' | 'canceled' | 'output-too-large' | 'spawn-failed';

export interface SandboxProcessSpec {
  command: string;
  args: string[];
  cwd: string;
  /** `undefined` inherits the driver's environment (bwrap `--clearenv`s it before the code runs). */
  env?: Record<string, string>;
  /** Host identity to run as (a dedicated sandbox uid). */
  ids?: { uid: number; gid: number };
  /** Written to stdin, then stdin is closed. */
  stdin: string;
  stdoutCapBytes: number;
  stderrTailBytes: number;
  timeoutMs: number;
  signal: AbortSignal;
  /** Open fd 3 for `bwrap --info-fd 3` and wait, after the end, until the pid namespace is gone. */
  infoFd: boolean;
  /** Written to fd 4 (for `bwrap --seccomp 4`), then closed. Needs `infoFd`. */
  seccompProgram?: Buffer;
  /**
   * A line the runner writes on stderr before any user code runs (`requestReceivedMarker`). Seen
   * → `runnerStarted`, and the line is left out of `stderrTail`.
   */
  startMarker?: string;
}

export interface SandboxProcessResult {
  termination: Termination;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderrTail: string;
  stderrTruncated: boolean;
  /** errno code (`ENOENT`...) when the process could not be started. */
  spawnError?: string;
  /** The runner wrote `startMarker`: the sandbox was set up and the code may have run. */
  runnerStarted: boolean;
  durationMs: number;
}

/** How long to wait for the stdio pipes to close after the process exited (a stray holder). */
const CLOSE_GRACE_MS = 3_000;
/** How long to wait for the sandbox's pid namespace to be torn down after the end. */
const NAMESPACE_GONE_TIMEOUT_MS = 5_000;

/**
 * Runs one sandbox process in its own process group and returns how it ended. Never rejects: a
 * spawn failure is a `spawn-failed` result. Every way out (timeout, abort, stdout overflow, normal
 * exit) SIGKILLs the whole process group, so nothing the code started outlives the execution.
 */
export function runSandboxProcess(spec: SandboxProcessSpec): Promise<SandboxProcessResult> {
  return new Promise((resolveResult) => {
    const startedAt = Date.now();
    const stdoutChunks: Buffer[] = [];
    let stdoutBytes = 0;
    let stderrTail: Buffer = Buffer.alloc(0);
    let stderrTruncated = false;
    // The marker is searched in the stream (a chunk boundary may cut it), not in the kept tail,
    // which the code could push it out of.
    let runnerStarted = false;
    let markerWindow = '';
    let termination: Termination | undefined;
    let namespacePid: Promise<NamespaceInit | undefined> = Promise.resolve(undefined);
    let finished = false;
    let child: ChildProcess;

    const cleanup: Array<() => void> = [];
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null, spawnError?: string): void => {
      if (finished) return;
      finished = true;
      for (const undo of cleanup) undo();
      const result: SandboxProcessResult = {
        termination: termination ?? 'exited',
        exitCode,
        signal,
        stdout: Buffer.concat(stdoutChunks).toString('utf8'),
        stderrTail: spec.startMarker ? stderrTail.toString('utf8').split(`${spec.startMarker}\n`).join('') : stderrTail.toString('utf8'),
        stderrTruncated,
        runnerStarted,
        ...(spawnError ? { spawnError } : {}),
        durationMs: 0,
      };
      void settleNamespace(namespacePid).finally(() => resolveResult({ ...result, durationMs: Date.now() - startedAt }));
    };
    const stop = (reason: Termination): void => {
      termination ??= reason;
      killGroup(child);
    };

    try {
      child = spawn(spec.command, spec.args, {
        cwd: spec.cwd,
        env: spec.env,
        detached: true,
        stdio: spec.seccompProgram ? ['pipe', 'pipe', 'pipe', 'pipe', 'pipe'] : spec.infoFd ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe'],
        ...(spec.ids ?? {}),
      });
    } catch (error) {
      termination = 'spawn-failed';
      finish(null, null, (error as NodeJS.ErrnoException).code ?? String(error));
      return;
    }

    child.on('error', (error: NodeJS.ErrnoException) => {
      if (child.pid === undefined) {
        termination = 'spawn-failed';
        finish(null, null, error.code ?? error.message);
      }
    });
    if (spec.infoFd) namespacePid = readNamespaceInit(child.stdio[3] as Readable | null);
    if (spec.seccompProgram) {
      // A few hundred bytes: they fit the pipe buffer, so bwrap reads them whenever it gets there.
      const seccomp = child.stdio[4] as Writable | null;
      seccomp?.on('error', () => undefined);
      seccomp?.end(spec.seccompProgram);
    }

    child.stdout?.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > spec.stdoutCapBytes) {
        stop('output-too-large');
        return;
      }
      stdoutChunks.push(chunk);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      if (spec.startMarker && !runnerStarted) {
        markerWindow = (markerWindow + chunk.toString('latin1')).slice(-(spec.startMarker.length + chunk.length));
        runnerStarted = markerWindow.includes(spec.startMarker);
        markerWindow = markerWindow.slice(-spec.startMarker.length);
      }
      const joined = Buffer.concat([stderrTail, chunk]);
      if (joined.length > spec.stderrTailBytes) stderrTruncated = true;
      stderrTail = joined.length > spec.stderrTailBytes ? joined.subarray(joined.length - spec.stderrTailBytes) : joined;
    });
    // The process may die before reading its request; that failure shows as its exit, not here.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(spec.stdin);

    const timer = setTimeout(() => stop('timeout'), spec.timeoutMs);
    cleanup.push(() => clearTimeout(timer));
    const onAbort = (): void => stop('canceled');
    if (spec.signal.aborted) onAbort();
    else {
      spec.signal.addEventListener('abort', onAbort, { once: true });
      cleanup.push(() => spec.signal.removeEventListener('abort', onAbort));
    }

    child.on('exit', (exitCode, signal) => {
      // Leftovers of the code in the group (`none` isolation) die with the runner.
      killGroup(child);
      const grace = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish(exitCode, signal);
      }, CLOSE_GRACE_MS);
      cleanup.push(() => clearTimeout(grace));
    });
    child.on('close', (exitCode, signal) => finish(exitCode, signal));
  });
}

/** SIGKILLs the child's process group (it leads one: `detached: true`). */
function killGroup(child: ChildProcess | undefined): void {
  if (child?.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is already gone.
  }
}

interface NamespaceInit {
  pid: number;
  startTime: string;
}

/** Reads bwrap's `--info-fd` JSON (`{"child-pid": N, ...}`): N is the pid namespace's init. */
function readNamespaceInit(stream: Readable | null): Promise<NamespaceInit | undefined> {
  if (!stream) return Promise.resolve(undefined);
  return new Promise((done) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => {
      if (text.length < 4096) text += chunk.toString('utf8');
    });
    stream.on('error', () => done(undefined));
    stream.on('close', () => {
      const match = /"child-pid"\s*:\s*(\d+)/.exec(text);
      if (!match) return done(undefined);
      const pid = Number(match[1]);
      void readStat(pid).then((stat) => done(stat ? { pid, startTime: stat.startTime } : undefined));
    });
  });
}

/** Waits (bounded) for bwrap's report of the namespace init, then for that init to be gone. */
async function settleNamespace(init: Promise<NamespaceInit | undefined>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((wake) => {
    timer = setTimeout(() => wake(undefined), NAMESPACE_GONE_TIMEOUT_MS);
  });
  const reported = await Promise.race([init, timeout]);
  clearTimeout(timer);
  if (reported) await waitUntilGone(reported);
}

/**
 * Waits until the namespace init is a zombie or gone. The kernel kills every process of a pid
 * namespace before its init becomes a zombie, so after this nothing the code started survives.
 */
async function waitUntilGone(init: NamespaceInit): Promise<void> {
  const deadline = Date.now() + NAMESPACE_GONE_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const stat = await readStat(init.pid);
    if (!stat || stat.startTime !== init.startTime || stat.state === 'Z' || stat.state === 'X') return;
    await new Promise((wake) => setTimeout(wake, 10));
  }
}

async function readStat(pid: number): Promise<{ state: string; startTime: string } | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!text) return undefined;
  // Fields after the parenthesized command name (which may itself contain spaces or parens).
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], startTime: fields[19] };
}
