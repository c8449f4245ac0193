import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { RunStore, type StoredEvent } from '../orchestration/run-store';
import { RunEventHub, runEventsConnectionName, type EventSubscriber } from './run-event-hub';
import { RunEventsService } from './run-events.service';

// A real Redis (REDIS_URL, started by `npm test`): the hub's shared XREAD is what a bad stream,
// a bad entry or a re-established connection must not break (issue 10 review, findings 2, 7, 8).
const redisUrl = process.env.REDIS_URL;
if (!redisUrl) throw new Error('REDIS_URL is not set: run this suite through `npm test`, which starts a private redis-server');

const logger = { debug() {}, warn() {}, error() {}, info() {} } as unknown as Logger;
const runEvent = (runId: string, status: string) => JSON.stringify({ type: 'run', runId, status, at: Date.now() });

/** Collects what a follower got; `next(n)` resolves once it holds n events. */
function collect(service: RunEventsService, runId: string, after = '0-0') {
  const got: StoredEvent[] = [];
  const waiters: Array<() => void> = [];
  const stop = new AbortController();
  const done = (async () => {
    for await (const stored of service.follow(runId, stop.signal, after)) {
      got.push(stored);
      waiters.splice(0).forEach((wake) => wake());
    }
  })();
  return {
    got,
    done,
    stop: () => stop.abort(),
    async next(count: number): Promise<string[]> {
      while (got.length < count) await new Promise<void>((wake) => waiters.push(wake));
      return got.map((stored) => (stored.event as { status: string }).status);
    },
  };
}

describe('RunEventHub (real Redis)', () => {
  let redis: Redis;
  let store: RunStore;
  let prefix: string;
  const hubs: RunEventHub[] = [];
  const hub = (blockMs?: number) => {
    const created = new RunEventHub(redis, store, logger, blockMs ? { blockMs } : undefined);
    hubs.push(created);
    return created;
  };
  const append = (runId: string, status: string) => redis.xadd(store.keys.events(runId), '*', 'e', runEvent(runId, status));

  beforeEach(() => {
    prefix = `{test-hub-${randomUUID().slice(0, 8)}}`;
    redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
    store = new RunStore(redis, { QUEUE_PREFIX: prefix } as CoordinatorConfig);
  });
  afterEach(async () => {
    await Promise.all(hubs.splice(0).map((h) => h.onApplicationShutdown()));
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('never takes a cursor from a client: a far-future or out-of-range id is refused, and every follower gets live events', async () => {
    const events = new RunEventsService(store, hub());
    await append('r', 'running');
    await expect(events.startAfter('r', '18446744073709551615-0')).rejects.toEqual(expect.objectContaining({ code: 'BAD_REQUEST', message: expect.stringContaining('after the last event of run r') }));
    expect(() => hub().subscribe('r', '99999999999999999999-0', { deliver() {}, end() {} })).toThrow(/entry id read from Redis/);
    const first = collect(events, 'r', await events.startAfter('r', '$'));
    const second = collect(events, 'r');
    await append('r', 'succeeded');
    expect(await first.next(1)).toEqual(['succeeded']);
    expect(await second.next(2)).toEqual(['running', 'succeeded']);
    await Promise.all([first.done, second.done]);
  });

  it('drops a stream Redis refuses to read, ending only its own followers', async () => {
    const events = new RunEventsService(store, hub());
    await append('good', 'running');
    await append('bad', 'running');
    const good = collect(events, 'good');
    const bad = collect(events, 'bad');
    await Promise.all([good.next(1), bad.next(1)]);
    // The bad run's stream becomes a string: every XREAD that names it fails with WRONGTYPE.
    await redis.del(store.keys.events('bad'));
    await redis.set(store.keys.events('bad'), 'not a stream');
    await append('good', 'succeeded');
    expect(await good.next(2)).toEqual(['running', 'succeeded']);
    await bad.done; // ended, not left waiting
    expect(bad.got).toHaveLength(1);
  });

  it('skips an entry that holds no event and delivers the ones after it', async () => {
    const events = new RunEventsService(store, hub());
    await append('r', 'running');
    const follower = collect(events, 'r');
    await follower.next(1);
    await redis.xadd(store.keys.events('r'), '*', 'e', '{not json');
    await redis.xadd(store.keys.events('r'), '*', 'x', 'y');
    await append('r', 'succeeded');
    expect(await follower.next(2)).toEqual(['running', 'succeeded']);
  });

  it('wakes its blocked read for a new stream after the reader connection was re-established', async () => {
    // Blocks far longer than the test may take: only a wake-up can deliver the new stream's events.
    const events = new RunEventsService(store, hub(10 * 60_000));
    const readers = async () =>
      String(await redis.client('LIST'))
        .split('\n')
        .filter((line) => line.includes(` name=${runEventsConnectionName(prefix)} `));
    const blockedReader = async (): Promise<string> => {
      for (;;) {
        const line = (await readers()).find((l) => / cmd=xread /.test(l) && / flags=b /.test(l));
        if (line) return /\bid=(\d+)/.exec(line)![1]!;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    await append('a', 'running');
    const first = collect(events, 'a');
    await first.next(1);
    const before = await blockedReader();
    // What a Redis restart does to the reader: its connection, and its client id, are gone.
    await redis.client('KILL', 'ID', before);
    for (let id = await blockedReader(); id === before; id = await blockedReader()) await new Promise((resolve) => setTimeout(resolve, 20));
    await append('b', 'running');
    const second = collect(events, 'b');
    await append('b', 'succeeded');
    expect(await second.next(2)).toEqual(['running', 'succeeded']);
  });

  it('shuts down without an unhandled rejection, also while it is starting to read', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (let i = 0; i < 5; i++) {
        const h = new RunEventHub(redis, store, logger);
        await append(`s${i}`, 'running');
        const subscriber: EventSubscriber = { deliver() {}, end() {} };
        h.subscribe(`s${i}`, (await store.lastEvent(`s${i}`))!.id, subscriber);
        await h.onApplicationShutdown();
      }
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
