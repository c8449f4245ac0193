import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { SandboxLogger } from '../driver';

const MAX_STARTS = 3;

/** A child's stdout is a socket: it can stop holding the event loop open. */
type RefReadable = Readable & { ref(): void; unref(): void };

/** Who writes each pipe: `in` the caller (the child reads it, like stdin), `out` the child. */
export type PipeDirection = 'in' | 'out';

export interface ServedSpawnSpec {
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** One entry per child fd from 0. */
  pipes: PipeDirection[];
  /**
   * `launch`: `command` is the server's own program (podflow-launch), whose launch the server's
   * child runs without exec'ing it again. `exec` (default): any program.
   */
  mode?: 'exec' | 'launch';
}

type State = 'starting' | 'running' | 'exited' | 'reaped' | 'failed';

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(osConstants.signals).map(([name, number]) => [number, name as NodeJS.Signals]));
const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, number]) => [number, name]));

/** A request: `<length>:` and the fields, each ending in a NUL byte. */
function encode(fields: string[]): Buffer {
  if (fields.some((field) => field.includes('\0'))) throw new Error('a spawn argument, environment entry or directory holds a NUL byte');
  const payload = Buffer.from(fields.map((field) => `${field}\0`).join(''), 'utf8');
  return Buffer.concat([Buffer.from(`${payload.length}:`), payload]);
}

/**
 * A child started by the spawn server, shaped like the part of `ChildProcess` a sandbox uses: its
 * pipes are there at once (streams the real pipes are joined to once the server has answered),
 * `pid` once it runs; 'error' (it could not start), 'exit' (code, signal) and 'close' (after the
 * exit, once its output pipes have ended).
 */
export class ServedChild extends EventEmitter {
  pid: number | undefined;
  readonly stdio: Array<PassThrough>;
  private state: State = 'starting';
  private killWanted = false;
  private exitArgs?: [number | null, NodeJS.Signals | null];
  private openOutputs: number;

  constructor(
    readonly id: number,
    readonly pipes: readonly PipeDirection[],
    private readonly reap: (child: ServedChild) => void,
  ) {
    super();
    this.stdio = pipes.map(() => new PassThrough());
    this.openOutputs = pipes.filter((direction) => direction === 'out').length;
    pipes.forEach((direction, fd) => {
      if (direction === 'out') this.stdio[fd]!.once('close', () => this.outputClosed());
    });
  }

  get stdin(): Writable | null {
    return this.pipes[0] === 'in' ? this.stdio[0]! : null;
  }

  get stdout(): Readable | null {
    return this.pipes[1] === 'out' ? this.stdio[1]! : null;
  }

  get stderr(): Readable | null {
    return this.pipes[2] === 'out' ? this.stdio[2]! : null;
  }

  /**
   * SIGKILLs the child's process group (it leads its own session): now, or as soon as it runs
   * when it is still starting. A no-op once reaped, when the group id could be someone else's.
   */
  killGroup(): void {
    if (this.state === 'starting') this.killWanted = true;
    if (this.state !== 'running' && this.state !== 'exited') return;
    try {
      process.kill(-this.pid!, 'SIGKILL');
    } catch {
      // ESRCH: the group is gone.
    }
  }

  /**
   * The server started it (it leads its session already): `ends` are the paths of the worker's
   * ends of its pipes, opened here in order. A pipe that cannot be opened (out of descriptors)
   * kills the child: it must not run with its request or its answer lost.
   */
  started(pid: number, ends: string[]): void {
    this.pid = pid;
    this.state = 'running';
    let opened = true;
    this.pipes.forEach((direction, fd) => {
      const stream = this.stdio[fd]!;
      let handle: number | undefined;
      let socket: Socket;
      try {
        handle = openSync(ends[fd]!, (direction === 'in' ? fsConstants.O_WRONLY : fsConstants.O_RDONLY) | fsConstants.O_NONBLOCK);
        socket = new Socket({ fd: handle, readable: direction === 'out', writable: direction === 'in' });
      } catch {
        if (handle !== undefined) closeSync(handle);
        stream.destroy();
        opened = false;
        return;
      }
      if (direction === 'in') {
        socket.on('error', () => stream.destroy());
        // pipe() ends the socket after its last write; a stream destroyed before its end closes it.
        stream.once('close', () => {
          if (!stream.readableEnded) socket.destroy();
        });
        stream.pipe(socket);
      } else {
        socket.on('error', () => stream.end());
        // A reader that gave up (destroyed the stream) lets go of the pipe too.
        stream.once('close', () => socket.destroy());
        socket.pipe(stream);
      }
    });
    if (this.killWanted || !opened) this.killGroup();
  }

  failed(code: string): void {
    this.state = 'failed';
    for (const stream of this.stdio) stream.destroy();
    const error = Object.assign(new Error(`spawn ${code}`), { code });
    this.emit('error', error);
  }

  /** The server saw it exit; it stays a zombie (its pid and group id reserved) until the listeners have run. */
  exited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.state !== 'running') return;
    this.state = 'exited';
    this.exitArgs = [code, signal];
    this.emit('exit', code, signal);
    this.state = 'reaped';
    this.reap(this);
    // As child_process does: an output nobody reads is drained, so that 'close' can come.
    this.pipes.forEach((direction, fd) => {
      if (direction === 'out' && this.stdio[fd]!.readableFlowing === null) this.stdio[fd]!.resume();
    });
    if (this.openOutputs === 0) this.emit('close', code, signal);
  }

  private outputClosed(): void {
    this.openOutputs -= 1;
    if (this.openOutputs === 0 && this.exitArgs) this.emit('close', ...this.exitArgs);
  }
}

/**
 * `podflow-launch --spawn-server <worker pid>` (native/podflow-launch.c): one long-lived root
 * child that starts the worker's sandboxes. `child_process.spawn` forks the whole worker and
 * blocks its event loop until the child has exec'd: ~1.5 ms per sandbox, a quarter of a busy
 * worker's CPU in a chain of warm executions. The server forks a small process instead and, for
 * the launcher's own launch, skips an exec too. The worker opens its ends of the pipes through
 * /proc/<server>/fd (a root worker may; the server is its child), so no descriptor has to be
 * passed over a socket. Started on first use and again after it died (at most MAX_STARTS
 * times); `available` is false after that, and callers spawn themselves.
 */
export class SpawnServer {
  private server?: ChildProcessByStdio<Writable, RefReadable, null>;
  private readonly children = new Map<number, ServedChild>();
  private nextId = 1;
  private buffered = '';
  private closed = false;
  private exits = 0;

  constructor(
    private readonly launcherBin: string,
    private readonly logger?: SandboxLogger,
  ) {}

  /** Whether `spawn` can be used (not closed, not given up on after MAX_STARTS exits). */
  get available(): boolean {
    return !this.closed && (this.server !== undefined || this.exits < MAX_STARTS);
  }

  /**
   * Starts a child; its failure to start is its 'error' event (`ECONNREFUSED`: no server).
   * @throws Error for a field with a NUL byte, which no process can be given (nothing is started).
   */
  spawn(spec: ServedSpawnSpec): ServedChild {
    const env = Object.entries(spec.env).map(([name, value]) => `${name}=${value}`);
    const pipes = spec.pipes.map((direction) => (direction === 'in' ? 'w' : 'r')).join('');
    const id = this.nextId++;
    const request = encode(['spawn', String(id), pipes, spec.mode ?? 'exec', spec.cwd, String(env.length), ...env, String(1 + spec.args.length), spec.command, ...spec.args]);
    const child = new ServedChild(id, spec.pipes, (done) => this.reaped(done));
    if (!this.available) {
      queueMicrotask(() => child.failed('ECONNREFUSED'));
      return child;
    }
    const server = this.server ?? this.start();
    this.children.set(id, child);
    if (this.children.size === 1) server.stdout.ref();
    server.stdin.write(request);
    return child;
  }

  /** Ends the server: it kills what it started and is left, and exits. */
  close(): void {
    this.closed = true;
    const server = this.server;
    this.server = undefined;
    server?.stdin.end();
    this.lost('the spawn server was closed');
  }

  private send(fields: string[]): void {
    this.server?.stdin.write(encode(fields));
  }

  private start(): ChildProcessByStdio<Writable, RefReadable, null> {
    // It dies with this process (the parent pid it is told, so a worker that is pid 1 works too).
    const server = spawn(this.launcherBin, ['--spawn-server', String(process.pid)], { stdio: ['pipe', 'pipe', 'inherit'], env: {} }) as ChildProcessByStdio<Writable, RefReadable, null>;
    this.server = server;
    // Idle, it must not keep the worker's event loop alive.
    server.unref();
    (server.stdin as Writable & { unref(): void }).unref();
    server.stdout.unref();
    server.stdout.setEncoding('utf8');
    server.stdout.on('data', (chunk: string) => {
      if (this.server === server) this.read(chunk, server.pid!);
    });
    server.stdin.on('error', () => undefined);
    const gone = (why: string) => {
      if (this.server !== server) return;
      this.server = undefined;
      this.exits += 1;
      this.buffered = '';
      this.lost(why);
    };
    server.once('error', (error) => gone(`the spawn server could not start: ${error.message}`));
    server.once('close', (code, signal) => gone(`the spawn server exited with ${code ?? signal}`));
    return server;
  }

  private read(chunk: string, serverPid: number): void {
    this.buffered += chunk;
    for (let end = this.buffered.indexOf('\n'); end >= 0; end = this.buffered.indexOf('\n')) {
      const [kind, id, ...rest] = this.buffered.slice(0, end).split(' ');
      this.buffered = this.buffered.slice(end + 1);
      const child = this.children.get(Number(id));
      if (!child) continue;
      if (kind === 'spawned') {
        child.started(Number(rest[0]), rest.slice(1).map((fd) => `/proc/${serverPid}/fd/${fd}`));
        // Opened: the server lets go of its copies (until then the child's stdin has a second writer).
        this.send(['close', String(child.id)]);
      } else if (kind === 'failed') {
        this.forget(child);
        child.failed(ERRNO_NAMES.get(Number(rest[0])) ?? `errno ${rest[0]}`);
      } else if (kind === 'exit') {
        const code = Number(rest[0]);
        child.exited(code >= 0 ? code : null, code >= 0 ? null : (SIGNAL_NAMES.get(Number(rest[1])) ?? 'SIGKILL'));
      }
    }
  }

  private reaped(child: ServedChild): void {
    this.send(['reap', String(child.id)]);
    this.forget(child);
  }

  private forget(child: ServedChild): void {
    this.children.delete(child.id);
    if (this.children.size === 0) this.server?.stdout.unref();
  }

  /**
   * The server is gone: its children's exits will never be reported. Those still starting fail;
   * running ones are killed (init reaps them now) and end as killed.
   */
  private lost(why: string): void {
    const children = [...this.children.values()];
    this.children.clear();
    for (const child of children) {
      if (child.pid === undefined) child.failed('ECONNRESET');
      else {
        child.killGroup();
        child.exited(null, 'SIGKILL');
      }
    }
    if (children.length > 0 && !this.closed) this.logger?.warn({ killed: children.length }, `${why}: the sandboxes it had started were ended`);
  }
}
