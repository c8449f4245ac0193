import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

const MAX_STARTS = 3;

/** A child's stdout is a socket: it can stop holding the event loop open. */
type RefReadable = Readable & { ref(): void; unref(): void };

interface Waiting {
  lines: number;
  answers: string[];
  resolve: (answers: string[]) => void;
  reject: (error: Error) => void;
}

/**
 * `podflow-launch --unmount-server <workRoot>` (native/podflow-launch.c): one long-lived root
 * child that detaches home tmpfs mounts as their paths arrive, so a finished execution's home
 * costs a line on a pipe instead of a `umount` spawned from the worker (a spawn forks the whole
 * worker; in a chain every execution paid one). Started on first use and again after it died
 * (at most MAX_STARTS times); it ends when the worker closes it or dies.
 */
export class UnmountServer {
  private child?: ChildProcessByStdio<Writable, RefReadable, null>;
  private readonly waiting: Waiting[] = [];
  private buffered = '';
  private closed = false;
  /** Exits so far: a server that keeps dying (a work root it refuses) is not started again. */
  private exits = 0;

  constructor(
    private readonly launcherBin: string,
    private readonly workRoot: string,
  ) {}

  /**
   * Detaches each of `dirs` (absolute paths under the work root); resolves with one answer per
   * path, in order: `0`, or `<errno> <why>`. Rejects when the server could not be reached.
   */
  detach(dirs: string[]): Promise<string[]> {
    if (dirs.length === 0) return Promise.resolve([]);
    if (dirs.some((dir) => dir.includes('\n') || dir.includes('\0'))) return Promise.reject(new Error('a home path with a line break or a NUL byte cannot be sent to the unmount server'));
    if (this.closed || (!this.child && this.exits >= MAX_STARTS)) return Promise.reject(new Error('the unmount server is closed or keeps exiting'));
    const child = this.child ?? this.start();
    return new Promise((resolve, reject) => {
      this.waiting.push({ lines: dirs.length, answers: [], resolve, reject });
      // Answers awaited keep the worker alive; an idle server does not (`start`).
      if (this.waiting.length === 1) child.stdout.ref();
      child.stdin.write(dirs.map((dir) => `${dir}\n`).join(''));
    });
  }

  /** Ends the server (it exits when its stdin closes); waiting callers are rejected. */
  close(): void {
    this.closed = true;
    const child = this.child;
    this.child = undefined;
    child?.stdin.end();
    this.fail(new Error('the unmount server was closed'));
  }

  private start(): ChildProcessByStdio<Writable, RefReadable, null> {
    // It dies with this process (the parent pid it is told, so a worker that is pid 1 works too).
    const child = spawn(this.launcherBin, ['--unmount-server', this.workRoot, String(process.pid)], { stdio: ['pipe', 'pipe', 'ignore'], env: {} }) as ChildProcessByStdio<Writable, RefReadable, null>;
    this.child = child;
    // Idle, it must not keep the worker's event loop alive.
    child.unref();
    (child.stdin as Writable & { unref(): void }).unref();
    child.stdout.unref();
    child.stdout.setEncoding('utf8');
    // Only this child's answers: lines a dead one still had buffered must not answer the next one's callers.
    child.stdout.on('data', (chunk: string) => {
      if (this.child === child) this.read(chunk);
    });
    // A write to a server that died fails with EPIPE; its exit rejects the callers.
    child.stdin.on('error', () => undefined);
    const gone = (error: Error) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.exits += 1;
      this.buffered = '';
      this.fail(error);
    };
    child.once('error', (error) => gone(new Error(`the unmount server could not start: ${error.message}`)));
    // 'close': after its last answers were read, which 'exit' may precede.
    child.once('close', (code, signal) => gone(new Error(`the unmount server exited with ${code ?? signal}`)));
    return child;
  }

  private read(chunk: string): void {
    this.buffered += chunk;
    for (let end = this.buffered.indexOf('\n'); end >= 0; end = this.buffered.indexOf('\n')) {
      const line = this.buffered.slice(0, end);
      this.buffered = this.buffered.slice(end + 1);
      const head = this.waiting[0];
      if (!head) continue;
      head.answers.push(line);
      if (head.answers.length === head.lines) {
        this.waiting.shift();
        if (this.waiting.length === 0) this.child?.stdout.unref();
        head.resolve(head.answers);
      }
    }
  }

  private fail(error: Error): void {
    for (const waiting of this.waiting.splice(0)) waiting.reject(error);
  }
}
