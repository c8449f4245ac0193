import type { ExecutionSandbox } from './execution-sandbox';
import type { StartedSandboxProcess } from './sandbox-process';
import { WarmPool, type PoolRuntime, type WarmSandbox } from './warm-pool';

// The pool's bookkeeping with stand-in sandboxes (the real ones: process-driver-warm.spec.ts).

/** A stand-in for a started sandbox process: waiting until taken, ended or discarded. */
class FakeProcess {
  private ended = false;
  private readonly listeners: Array<() => void> = [];
  discarded = false;
  runs = 0;

  get waiting(): boolean {
    return !this.ended && this.runs === 0;
  }

  onEnded(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** As if killed from outside while waiting: it stops waiting at once, its teardown ends later (`tornDown`). */
  exit(): void {
    this.ended = true;
  }

  tornDown(): void {
    for (const listener of this.listeners.splice(0)) listener();
  }

  die(): void {
    this.exit();
    this.tornDown();
  }

  async discard(): Promise<void> {
    this.discarded = true;
    this.die();
  }
}

interface Started {
  member: WarmSandbox;
  process: FakeProcess;
  disposed: () => boolean;
}

function fakeStarter(options: { fail?: () => boolean } = {}) {
  const started: Started[] = [];
  const start = jest.fn(async (runtime: PoolRuntime): Promise<WarmSandbox> => {
    await new Promise((resolve) => setImmediate(resolve));
    if (options.fail?.()) throw new Error('bwrap: setting up uid map: Permission denied');
    const process = new FakeProcess();
    let disposed = false;
    const sandbox = { dispose: async () => void (disposed = true) } as unknown as ExecutionSandbox;
    const member: WarmSandbox = { runtime, sandbox, process: process as unknown as StartedSandboxProcess, command: 'bwrap', startedAt: Date.now() };
    started.push({ member, process, disposed: () => disposed });
    return member;
  });
  return { start, started };
}

const settle = async (ms = 20) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await settle(10);
  }
  throw new Error(`never: ${what}`);
}

const pools: WarmPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

function pool(options: Omit<ConstructorParameters<typeof WarmPool>[0], 'runtimes'> & { runtimes?: PoolRuntime[] }): WarmPool {
  const created = new WarmPool({ runtimes: ['python', 'node'], ...options });
  pools.push(created);
  return created;
}

describe('WarmPool', () => {
  it('fills every runtime to its size, at most maxStarting at a time', async () => {
    const { start } = fakeStarter();
    const warm = pool({ size: 3, start, maxStarting: 2 });
    warm.fill();
    expect(warm.stats().starting).toEqual({ python: 2, node: 2 });
    await until(() => warm.stats().waiting.python === 3 && warm.stats().waiting.node === 3, 'three waiting per runtime');
    await settle();
    expect(start).toHaveBeenCalledTimes(6);
  });

  it('hands each sandbox to one execution only, oldest first, and refills behind it', async () => {
    const { start, started } = fakeStarter();
    const warm = pool({ size: 2, start });
    warm.fill();
    await until(() => warm.stats().waiting.python === 2, 'python filled');
    const first = warm.take('python');
    const second = warm.take('python');
    expect(first).toBe(started.find((s) => s.member.runtime === 'python')!.member);
    expect(second).not.toBe(first);
    expect(first?.runtime).toBe('python');
    // Empty now: the next execution starts cold, and the pool is refilling.
    expect(warm.take('python')).toBeUndefined();
    expect(warm.stats()).toMatchObject({ taken: 2, missed: 1 });
    await until(() => warm.stats().waiting.python === 2, 'python refilled');
    const third = warm.take('python');
    expect([first, second]).not.toContain(third);
  });

  it('never hands out a sandbox that ended while waiting; it is disposed of and replaced', async () => {
    const { start, started } = fakeStarter();
    const warm = pool({ size: 1, start, runtimes: ['python'] });
    warm.fill();
    await until(() => warm.stats().waiting.python === 1, 'filled');
    const victim = started[0]!;
    victim.process.die();
    expect(warm.stats()).toMatchObject({ waiting: { python: 0 }, lost: 1 });
    expect(victim.disposed()).toBe(true);
    expect(warm.take('python')).toBeUndefined();
    // Replaced after the retry delay (500 ms), not in a busy loop.
    await until(() => warm.stats().waiting.python === 1, 'replaced');
    const replacement = warm.take('python');
    expect(replacement).toBeDefined();
    expect(replacement).not.toBe(victim.member);
  });

  it('backs off when sandboxes cannot start, and serves again once they can', async () => {
    let failing = true;
    const { start } = fakeStarter({ fail: () => failing });
    const warnings: string[] = [];
    const warm = pool({ size: 2, start, runtimes: ['node'], logger: { warn: (_obj, msg) => warnings.push(msg), info: () => undefined } });
    warm.fill();
    await settle(700);
    // Two failed starts, then one retry after 500 ms: a broken host is not hammered.
    expect(start.mock.calls.length).toBeLessThanOrEqual(4);
    expect(warnings[0]).toMatch(/warm sandbox lost or not started/);
    expect(warm.take('node')).toBeUndefined();
    failing = false;
    await until(() => warm.stats().waiting.node === 2, 'filled after the host recovered');
  });

  it('close() discards the waiting sandboxes and starts no more', async () => {
    const { start, started } = fakeStarter();
    const warm = pool({ size: 2, start });
    warm.fill();
    await until(() => warm.stats().waiting.python === 2 && warm.stats().waiting.node === 2, 'filled');
    const taken = warm.take('node')!;
    await warm.close();
    const calls = start.mock.calls.length;
    await settle(50);
    expect(start.mock.calls.length).toBe(calls);
    const waitingOnes = started.filter((s) => s.member !== taken);
    expect(waitingOnes.every((s) => s.process.discarded && s.disposed())).toBe(true);
    // The taken one belongs to its execution: the pool leaves it alone.
    expect(started.find((s) => s.member === taken)!.process.discarded).toBe(false);
    expect(warm.take('python')).toBeUndefined();
  });

  it('never hands out one that exited before its teardown ended, and still disposes of it', async () => {
    const { start, started } = fakeStarter();
    const warm = pool({ size: 2, start, runtimes: ['python'] });
    warm.fill();
    await until(() => warm.stats().waiting.python === 2, 'filled');
    const [first, second] = started;
    first!.process.exit();
    // The oldest has exited but is not torn down yet: the next one is handed out instead.
    expect(warm.take('python')).toBe(second!.member);
    expect(first!.disposed()).toBe(false);
    first!.process.tornDown();
    expect(first!.disposed()).toBe(true);
    expect(warm.stats().lost).toBe(1);
  });

  it('replaces sandboxes that waited longer than maxIdleMs', async () => {
    const { start, started } = fakeStarter();
    const warm = pool({ size: 1, start, runtimes: ['node'], maxIdleMs: 300 });
    warm.fill();
    await until(() => warm.stats().waiting.node === 1, 'filled');
    const first = started[0]!;
    // The recycler looks at least every second.
    await until(() => first.process.discarded && first.disposed(), 'the stale one discarded');
    await until(() => warm.stats().waiting.node === 1 && started.length >= 2, 'replaced');
    expect(warm.take('node')).not.toBe(first.member);
    expect(warm.stats().lost).toBe(0);
  });
});
