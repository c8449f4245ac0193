import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { ServedChild, type PipeDirection, type SpawnServer } from './spawn-server';

/** Why the sandbox process ended. The first cause recorded wins (a timeout stays a timeout). */
export type Termination = 'exited' | 'timeout' | 'canceled' | 'output-too-large' | 'spawn-failed';

/** What the process is started with: fixed before any request exists (a warm sandbox is started ahead of its execution). */
export interface SandboxLaunchSpec {
  command: string;
  args: string[];
  cwd: string;
  /** `undefined` inherits the driver's environment (bwrap `--clearenv`s it before the code runs). */
  env?: Record<string, string>;
  /** Host identity to run as (a dedicated sandbox uid). */
  ids?: { uid: number; gid: number };
  stderrTailBytes: number;
  /** Open fd 3 for `bwrap --info-fd 3` and wait, after the end, until the pid namespace is gone. */
  infoFd: boolean;
  /** Written to fd 4 (for `bwrap --seccomp 4`), then closed. Needs `infoFd`. */
  seccompProgram?: Buffer;
  /**
   * Started by this server instead of `child_process.spawn` (which forks the whole worker), while
   * it is available; `launch`: `command` is the server's own program (spawn-server.ts). Not with `ids`.
   */
  server?: { spawner: SpawnServer; launch: boolean };
}

/** The part of a child process a sandbox uses: `ChildProcess`, or a `ServedChild` of the spawn server. */
interface SandboxChild {
  readonly pid?: number | undefined;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  readonly stdio: ReadonlyArray<Readable | Writable | null | undefined>;
  on(event: 'exit' | 'close', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
  on(event: 'error', listener: (error: NodeJS.ErrnoException) => void): unknown;
}

/** What one execution hands the started process: its request and the limits that count from then on. */
export interface SandboxRunSpec {
  /** Written to stdin, then stdin is closed. */
  stdin: string;
  stdoutCapBytes: number;
  /** Counted from the hand-over, not from the spawn. */
  timeoutMs: number;
  signal: AbortSignal;
  /**
   * A line the runner writes on stderr before any user code runs (`requestReceivedMarker`). Seen
   * → `runnerStarted`, and the line is left out of `stderrTail`.
   */
  startMarker?: string;
  /**
   * The last line of the runner's answer on stdout. Seen → the answer is complete: the host kills
   * the sandbox and `run` resolves at once (exit code and signal null), without waiting for the
   * interpreter to shut down or for the kill to be reaped (together 5-12 ms on a busy host).
   */
  endMarker?: string;
  /**
   * `false`: resolve as soon as the process has ended, before its pid namespace is gone (the
   * result's `teardown` says when). Default true: nothing the code started is left on return.
   */
  awaitTeardown?: boolean;
}

export type SandboxProcessSpec = SandboxLaunchSpec & SandboxRunSpec;

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
  /** From the hand-over (`run`) to the end. */
  durationMs: number;
  /** Resolves once the sandbox's pid namespace is gone: nothing the code started survives. */
  teardown: Promise<void>;
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
  return startSandboxProcess(spec).run(spec);
}

/**
 * Starts a sandbox process that waits for its request on stdin: the interpreter and the runner
 * load now, the execution hands its request over later (`run`), once. A warm pool keeps these.
 */
export function startSandboxProcess(spec: SandboxLaunchSpec): StartedSandboxProcess {
  return new StartedSandboxProcess(spec);
}

/** A started sandbox process; see `startSandboxProcess`. */
export class StartedSandboxProcess {
  private child?: SandboxChild;
  private readonly stdoutChunks: Buffer[] = [];
  private stdoutBytes = 0;
  private stderrTail: Buffer = Buffer.alloc(0);
  private stderrTruncated = false;
  private runnerStarted = false;
  private startWatch?: MarkerWatch;
  private endWatch?: MarkerWatch;
  private answered = false;
  /** The process has exited (its pipes may still be open): it can no longer take a request. */
  private exited = false;
  private termination?: Termination;
  private namespacePid: Promise<NamespaceInit | undefined> = Promise.resolve(undefined);
  private ended?: Omit<SandboxProcessResult, 'durationMs'>;
  private readonly endedPromise: Promise<Omit<SandboxProcessResult, 'durationMs'>>;
  private resolveEnded!: (result: Omit<SandboxProcessResult, 'durationMs'>) => void;
  /** The process itself has been reaped (or never started): it no longer runs as the sandbox's uid. */
  private readonly reaped: Promise<void>;
  private resolveReaped!: () => void;
  private runSpec?: SandboxRunSpec;
  private readonly cleanup: Array<() => void> = [];
  private readonly exitListeners: Array<() => void> = [];

  constructor(private readonly spec: SandboxLaunchSpec) {
    this.endedPromise = new Promise((resolve) => (this.resolveEnded = resolve));
    this.reaped = new Promise((resolve) => (this.resolveReaped = resolve));
    let child: SandboxChild;
    try {
      child = spawnChild(spec);
    } catch (error) {
      this.termination = 'spawn-failed';
      this.resolveReaped();
      this.finish(null, null, (error as NodeJS.ErrnoException).code ?? String(error));
      return;
    }
    this.child = child;
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (child.pid === undefined) {
        this.termination = 'spawn-failed';
        this.resolveReaped();
        this.finish(null, null, error.code ?? error.message);
      }
    });
    if (spec.infoFd) this.namespacePid = readNamespaceInit(child.stdio[3] as Readable | null);
    if (spec.seccompProgram) {
      // A few hundred bytes: they fit the pipe buffer, so bwrap reads them whenever it gets there.
      const seccomp = child.stdio[4] as Writable | null;
      seccomp?.on('error', () => undefined);
      seccomp?.end(spec.seccompProgram);
    }
    child.stdout?.on('data', (chunk: Buffer) => {
      this.stdoutBytes += chunk.length;
      if (this.runSpec && this.stdoutBytes > this.runSpec.stdoutCapBytes) {
        this.stop('output-too-large');
        return;
      }
      this.stdoutChunks.push(chunk);
      this.watchForAnswer(chunk);
    });
    child.stderr?.on('data', (chunk: Buffer) => this.onStderr(chunk));
    // The process may die before reading its request; that failure shows as its exit, not here.
    child.stdin?.on('error', () => undefined);
    child.on('exit', (exitCode, signal) => {
      this.exited = true;
      // Leftovers of the code in the group (`none` isolation) die with the runner.
      killGroup(child);
      this.resolveReaped();
      // Finished when the answer was complete (endMarker).
      if (this.answered) return;
      const grace = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        this.finish(exitCode, signal);
      }, CLOSE_GRACE_MS);
      this.cleanup.push(() => clearTimeout(grace));
    });
    child.on('close', (exitCode, signal) => this.finish(exitCode, signal));
  }

  /** Whether the process is still there to take a request (not ended, not handed one already). */
  get waiting(): boolean {
    return !this.exited && this.ended === undefined && this.runSpec === undefined;
  }

  /** Called once when the process has ended and its pid namespace is gone, run or not. */
  onEnded(listener: () => void): void {
    if (this.ended) void this.ended.teardown.then(listener);
    else this.exitListeners.push(listener);
  }

  /**
   * Hands the request over and resolves with how the process ended. The timeout and the stdout
   * cap count from here. Once per process: a second call throws.
   */
  run(run: SandboxRunSpec): Promise<SandboxProcessResult> {
    if (this.runSpec) throw new Error('this sandbox process was already handed a request');
    this.runSpec = run;
    if (run.startMarker) this.startWatch = new MarkerWatch(run.startMarker);
    if (run.endMarker) this.endWatch = new MarkerWatch(run.endMarker);
    const startedAt = Date.now();
    // Checked before the request is written: a canceled or overflowing sandbox never gets it.
    if (run.signal.aborted) this.stop('canceled');
    else if (this.stdoutBytes > run.stdoutCapBytes) this.stop('output-too-large');
    else {
      for (const chunk of this.stdoutChunks) this.watchForAnswer(chunk);
      this.child?.stdin?.end(run.stdin);
    }
    const timer = setTimeout(() => this.stop('timeout'), run.timeoutMs);
    this.cleanup.push(() => clearTimeout(timer));
    const onAbort = (): void => this.stop('canceled');
    if (run.signal.aborted) onAbort();
    else {
      run.signal.addEventListener('abort', onAbort, { once: true });
      this.cleanup.push(() => run.signal.removeEventListener('abort', onAbort));
    }
    if (this.ended) for (const undo of this.cleanup.splice(0)) undo();
    return this.endedPromise.then(async (result) => {
      const durationMs = Date.now() - startedAt;
      if (run.awaitTeardown !== false) await result.teardown;
      return {
        ...result,
        stdout: Buffer.concat(this.stdoutChunks).toString('utf8'),
        stderrTail: run.startMarker ? result.stderrTail.split(`${run.startMarker}\n`).join('') : result.stderrTail,
        runnerStarted: this.runnerStarted,
        durationMs,
      };
    });
  }

  /** Kills a process that will not be handed a request; resolves once it and its namespace are gone. */
  async discard(): Promise<void> {
    this.stop('canceled');
    await (await this.endedPromise).teardown;
  }

  private watchForAnswer(chunk: Buffer): void {
    if (this.answered || !this.endWatch?.seenIn(chunk)) return;
    this.answered = true;
    if (this.ended) return;
    killGroup(this.child);
    // No termination reason: the process ends because it has answered. Its exit status is of no
    // interest (the answer is the result) and its end is awaited by `teardown`, not here.
    this.finish(null, null);
  }

  private onStderr(chunk: Buffer): void {
    if (!this.runnerStarted && this.startWatch?.seenIn(chunk)) this.runnerStarted = true;
    const joined = Buffer.concat([this.stderrTail, chunk]);
    if (joined.length > this.spec.stderrTailBytes) this.stderrTruncated = true;
    this.stderrTail = joined.length > this.spec.stderrTailBytes ? joined.subarray(joined.length - this.spec.stderrTailBytes) : joined;
  }

  private stop(reason: Termination): void {
    this.termination ??= reason;
    // Once reaped, the process group id could belong to someone else.
    if (!this.ended) killGroup(this.child);
  }

  private finish(exitCode: number | null, signal: NodeJS.Signals | null, spawnError?: string): void {
    if (this.ended) return;
    for (const undo of this.cleanup.splice(0)) undo();
    this.ended = {
      termination: this.termination ?? 'exited',
      exitCode,
      signal,
      stdout: '',
      stderrTail: this.stderrTail.toString('utf8'),
      stderrTruncated: this.stderrTruncated,
      runnerStarted: this.runnerStarted,
      ...(spawnError ? { spawnError } : {}),
      teardown: Promise.all([this.reaped, settleNamespace(this.namespacePid)]).then(() => {
        for (const listener of this.exitListeners.splice(0)) listener();
      }),
    };
    this.resolveEnded(this.ended);
  }
}

/**
 * Finds a marker in a stream fed chunk by chunk: searched across chunk boundaries (one may cut
 * it), never in a kept tail, which what follows could push it out of.
 */
class MarkerWatch {
  private window = '';

  constructor(private readonly marker: string) {}

  seenIn(chunk: Buffer): boolean {
    const text = this.window + chunk.toString('latin1');
    if (text.includes(this.marker)) return true;
    this.window = text.slice(-this.marker.length);
    return false;
  }
}

/**
 * Through the spawn server when the spec names one that is up (the child leads a session of its
 * own there), else `child_process.spawn` with `detached: true` (a process group of its own).
 */
function spawnChild(spec: SandboxLaunchSpec): SandboxChild {
  const pipes: PipeDirection[] = spec.seccompProgram ? ['in', 'out', 'out', 'out', 'in'] : spec.infoFd ? ['in', 'out', 'out', 'out'] : ['in', 'out', 'out'];
  if (spec.server?.spawner.available && !spec.ids) {
    const env = spec.env ?? Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined));
    return spec.server.spawner.spawn({ command: spec.command, args: spec.args, cwd: spec.cwd, env, pipes, mode: spec.server.launch ? 'launch' : 'exec' });
  }
  return spawn(spec.command, spec.args, { cwd: spec.cwd, env: spec.env, detached: true, stdio: pipes.map(() => 'pipe'), ...(spec.ids ?? {}) }) as ChildProcess;
}

/** SIGKILLs the child's process group (it leads one). */
function killGroup(child: SandboxChild | undefined): void {
  if (child instanceof ServedChild) {
    child.killGroup();
    return;
  }
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
      const stat = readStat(pid);
      done(stat ? { pid, startTime: stat.startTime } : undefined);
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
  // The kernel usually needs a millisecond or two: poll soon, then back off to 10 ms.
  for (let pause = 1; Date.now() < deadline; pause = Math.min(pause * 2, 10)) {
    const stat = readStat(init.pid);
    if (!stat || stat.startTime !== init.startTime || stat.state === 'Z' || stat.state === 'X') return;
    await new Promise((wake) => setTimeout(wake, pause));
  }
}

function readStat(pid: number): { state: string; startTime: string } | undefined {
  // Synchronous: procfs answers in microseconds; fs/promises' readFile is four thread-pool trips.
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  if (!text) return undefined;
  // Fields after the parenthesized command name (which may itself contain spaces or parens).
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], startTime: fields[19] };
}
