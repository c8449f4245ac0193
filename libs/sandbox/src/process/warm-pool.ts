import type { Language } from '@podflow/protocol';
import type { SandboxLogger } from '../driver';
import type { ExecutionSandbox } from './execution-sandbox';
import type { StartedSandboxProcess } from './sandbox-process';

/** What a pool keeps sandboxes for: one runner program each (TypeScript and JavaScript share Node's). */
export type PoolRuntime = 'python' | 'node';

export function poolRuntimeOf(language: Language): PoolRuntime {
  return language === 'python' ? 'python' : 'node';
}

/**
 * A sandbox started ahead of its execution: host resources prepared (directory, uid, home tmpfs,
 * cgroups), interpreter and runner loaded, the runner blocked reading its request. Nothing in it
 * belongs to a tenant until an execution takes it, and it serves that one execution only.
 */
export interface WarmSandbox {
  runtime: PoolRuntime;
  /** When it was started (Date.now()). */
  startedAt: number;
  sandbox: ExecutionSandbox;
  process: StartedSandboxProcess;
  /** The command line's first word, for error messages (as a cold start reports it). */
  command: string;
}

export interface WarmPoolOptions {
  /** Sandboxes kept waiting per runtime. */
  size: number;
  runtimes: readonly PoolRuntime[];
  /** Prepares and starts one sandbox (the driver's cold path without a request). */
  start(runtime: PoolRuntime): Promise<WarmSandbox>;
  logger?: SandboxLogger;
  /**
   * Sandboxes started at the same time per runtime while refilling (default min(size, 4)). A start
   * is mostly waiting (namespaces, exec chain), ~25 ms of CPU in ~65 ms: starting several at once
   * refills a drained pool faster; the cap keeps a large pool from starting everything at once.
   */
  maxStarting?: number;
  /**
   * A sandbox waiting longer is replaced (default 30 min): its host directory must not look
   * abandoned to a sweep (host-probe.ts), and a long-lived process is a longer-lived target.
   */
  maxIdleMs?: number;
}

/** After a failed start, the next waits this long, doubling up to RETRY_MAX_MS (a host that cannot start sandboxes is not hammered). */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;
const DEFAULT_MAX_IDLE_MS = 30 * 60_000;

export interface WarmPoolStats {
  waiting: Record<PoolRuntime, number>;
  starting: Record<PoolRuntime, number>;
  /** Executions that took a waiting sandbox, and ones that found none (they start cold). */
  taken: number;
  missed: number;
  /** Waiting sandboxes that ended on their own (killed, crashed) and were replaced. */
  lost: number;
}

/**
 * Keeps `size` started sandboxes per runtime, hands each to exactly one execution (`take`) and
 * refills in the background. A sandbox never returns to the pool: the execution that took it owns
 * it and disposes of it like a cold one. A waiting sandbox that dies (killed, OOM) is thrown away
 * and replaced; `close` kills the waiting ones. They die with the worker too (bubblewrap
 * `--die-with-parent`), and the next start sweeps what they left on the host.
 */
export class WarmPool {
  private readonly waiting = new Map<PoolRuntime, WarmSandbox[]>();
  private readonly starting = new Map<PoolRuntime, number>();
  /** The last retry delay after failed starts, and the timer of the pending retry (refills wait for it). */
  private readonly retryDelay = new Map<PoolRuntime, number>();
  private readonly retryTimer = new Map<PoolRuntime, NodeJS.Timeout>();
  private readonly pending = new Set<Promise<unknown>>();
  /** No longer the pool's: taken by an execution (which owns it now) or discarded as stale. */
  private readonly letGo = new WeakSet<WarmSandbox>();
  private readonly maxStarting: number;
  private readonly maxIdleMs: number;
  private readonly recycler: NodeJS.Timeout;
  private closed = false;
  private taken = 0;
  private missed = 0;
  private lost = 0;

  constructor(private readonly options: WarmPoolOptions) {
    this.maxStarting = Math.max(1, options.maxStarting ?? Math.min(options.size, 4));
    this.maxIdleMs = options.maxIdleMs ?? DEFAULT_MAX_IDLE_MS;
    this.recycler = setInterval(() => this.recycleStale(), Math.max(1_000, Math.min(60_000, this.maxIdleMs / 2)));
    this.recycler.unref();
    for (const runtime of options.runtimes) {
      this.waiting.set(runtime, []);
      this.starting.set(runtime, 0);
    }
  }

  /** Starts filling every runtime's pool. */
  fill(): void {
    for (const runtime of this.options.runtimes) this.refill(runtime);
  }

  /** A waiting sandbox for `runtime` (the oldest, most likely ready), or undefined: the caller starts cold. */
  take(runtime: PoolRuntime): WarmSandbox | undefined {
    const queue = this.waiting.get(runtime);
    if (!queue) return undefined;
    // The oldest that still waits; one that ended a moment ago stays behind for its onEnded
    // handler, which disposes of it and refills.
    const index = queue.findIndex((candidate) => candidate.process.waiting);
    const member = index >= 0 ? queue.splice(index, 1)[0] : undefined;
    if (member) {
      this.letGo.add(member);
      this.taken++;
      // A sandbox that lived to be used: the host can start them, later failures back off from the start.
      this.retryDelay.delete(runtime);
    } else this.missed++;
    this.refill(runtime);
    return member;
  }

  stats(): WarmPoolStats {
    const per = (map: Map<PoolRuntime, number>) => Object.fromEntries(this.options.runtimes.map((r) => [r, map.get(r) ?? 0])) as Record<PoolRuntime, number>;
    const waiting = new Map([...this.waiting].map(([runtime, queue]) => [runtime, queue.length]));
    return { waiting: per(waiting), starting: per(this.starting), taken: this.taken, missed: this.missed, lost: this.lost };
  }

  /** Kills the waiting sandboxes and frees their host resources; nothing is started after this. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.recycler);
    for (const timer of this.retryTimer.values()) clearTimeout(timer);
    this.retryTimer.clear();
    const members = [...this.waiting.values()].flatMap((queue) => queue.splice(0));
    await Promise.all([...members.map((member) => discard(member)), ...this.pending]);
  }

  private refill(runtime: PoolRuntime): void {
    if (this.closed || this.retryTimer.has(runtime)) return;
    const queue = this.waiting.get(runtime)!;
    while (!this.closed && queue.length + this.starting.get(runtime)! < this.options.size && this.starting.get(runtime)! < this.maxStarting) {
      this.starting.set(runtime, this.starting.get(runtime)! + 1);
      const started = this.startOne(runtime).finally(() => {
        this.pending.delete(started);
        this.starting.set(runtime, this.starting.get(runtime)! - 1);
        this.refill(runtime);
      });
      this.pending.add(started);
    }
  }

  private async startOne(runtime: PoolRuntime): Promise<void> {
    let member: WarmSandbox;
    try {
      member = await this.options.start(runtime);
    } catch (error) {
      this.scheduleRetry(runtime, error);
      return;
    }
    if (this.closed) {
      await discard(member);
      return;
    }
    const queue = this.waiting.get(runtime)!;
    queue.push(member);
    member.process.onEnded(() => {
      if (this.letGo.has(member)) return;
      const index = queue.indexOf(member);
      if (index >= 0) queue.splice(index, 1);
      if (this.closed) return; // close() disposes of it
      this.lost++;
      void member.sandbox.dispose().catch(() => undefined);
      // Replaced after the retry delay: a sandbox that cannot stay up (a broken host) must not
      // turn the refill into a busy loop.
      this.scheduleRetry(runtime, new Error('a waiting warm sandbox ended before it was used'));
    });
  }

  /** Discards sandboxes that waited longer than maxIdleMs; refill replaces them. */
  private recycleStale(): void {
    const now = Date.now();
    for (const [runtime, queue] of this.waiting) {
      const stale = queue.filter((member) => now - member.startedAt > this.maxIdleMs);
      if (stale.length === 0) continue;
      for (const member of stale) {
        queue.splice(queue.indexOf(member), 1);
        this.letGo.add(member); // its onEnded must not count it lost
        const discarded = discard(member).finally(() => this.pending.delete(discarded));
        this.pending.add(discarded);
      }
      this.refill(runtime);
    }
  }

  private scheduleRetry(runtime: PoolRuntime, error: unknown): void {
    if (this.closed || this.retryTimer.has(runtime)) return;
    const previous = this.retryDelay.get(runtime);
    const delay = previous === undefined ? RETRY_FIRST_MS : Math.min(previous * 2, RETRY_MAX_MS);
    this.retryDelay.set(runtime, delay);
    this.options.logger?.warn({ runtime, err: error, retryInMs: delay }, 'warm sandbox lost or not started; refilling after a delay, executions start cold meanwhile');
    const timer = setTimeout(() => {
      this.retryTimer.delete(runtime);
      this.refill(runtime);
    }, delay);
    timer.unref();
    this.retryTimer.set(runtime, timer);
  }
}

async function discard(member: WarmSandbox): Promise<void> {
  await member.process.discard().catch(() => undefined);
  await member.sandbox.dispose().catch(() => undefined);
}
