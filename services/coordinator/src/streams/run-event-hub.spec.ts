import { randomUUID } from 'node:crypto';
import { runEventsChannel } from '@podflow/protocol';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { RunStore, type StoredEvent } from '../orchestration/run-store';
import { RunEventHub, runEventsConnectionName, type EventSubscriber } from './run-event-hub';
import { RunEventsService } from './run-events.service';

// A real Redis (REDIS_URL, started by `npm test`). The hub reads each followed stream on its own
// when the run store announces new entries on the run's channel; a bad stream, a bad entry, a
// lost message or a re-established subscriber connection must not break it (issue 10 review,
// findings 2, 7, 8; issue 11: no multi-stream read, so it works on a Redis Cluster).
const redisUrl = process.env.REDIS_URL;
if (!redisUrl) throw new Error('REDIS_URL is not set: run this suite through `npm test`, which starts a private redis-server');

const logger = { debug() {}, warn() {}, error() {}, info() {} } as unknown as Logger;
const runEvent = (runId: string, status: string) => JSON.stringify({ type: 'run', runId, status, at: Date.now() });
async function eventually(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 20));
}

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
  const hub = (sweepMs?: number) => {
    const created = new RunEventHub(redis, store, logger, sweepMs ? { sweepMs } : undefined);
    hubs.push(created);
    return created;
  };
  /** What the run store's scripts do: XADD the entry, then PUBLISH its id on the run's channel. */
  const write = async (runId: string, fields: string[], announce = true) => {
    const id = (await redis.xadd(store.keys.events(runId), '*', ...fields))!;
    if (announce) await redis.publish(runEventsChannel(prefix, runId), id);
    return id;
  };
  const append = (runId: string, status: string, announce = true) => write(runId, ['e', runEvent(runId, status)], announce);
  const subscriberConnections = async () =>
    String(await redis.client('LIST'))
      .split('\n')
      .filter((line) => line.includes(` name=${runEventsConnectionName(prefix)} `));

  beforeEach(() => {
    prefix = `test-hub-${randomUUID().slice(0, 8)}`;
    redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
    store = new RunStore(redis, { QUEUE_PREFIX: prefix } as CoordinatorConfig);
  });
  afterEach(async () => {
    await Promise.all(hubs.splice(0).map((h) => h.onApplicationShutdown()));
    const keys = await redis.keys(`${prefix}:*`);
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

  it('serves every followed run through one subscriber connection, and takes a message as a hint only', async () => {
    const h = hub(10 * 60_000);
    const events = new RunEventsService(store, h);
    const runs = ['a', 'b', 'c'];
    for (const run of runs) await append(run, 'running');
    const followers = runs.map((run) => collect(events, run));
    await Promise.all(followers.map((f) => f.next(1)));
    expect(h.streamCount).toBe(3);
    // The hub connects its subscriber with its first stream (the history came from XRANGE meanwhile).
    await eventually(async () => (await subscriberConnections()).length === 1);
    expect(await subscriberConnections()).toHaveLength(1);
    // A message naming an id far ahead moves nothing: the hub reads the stream from its own cursor.
    await redis.publish(runEventsChannel(prefix, 'a'), '99999999999999-0');
    await redis.publish(runEventsChannel(prefix, 'b'), 'not an id');
    for (const run of runs) await append(run, 'succeeded');
    for (const follower of followers) expect(await follower.next(2)).toEqual(['running', 'succeeded']);
    await Promise.all(followers.map((f) => f.done));
    expect(h.streamCount).toBe(0);
  });

  it('reads a stream right after subscribing, so an entry written before the subscription took effect is delivered', async () => {
    const h = hub(10 * 60_000);
    const first = await append('r', 'running');
    // Written and announced while nobody listened: the message is gone, the entry is not.
    await append('r', 'succeeded');
    const got: string[] = [];
    const delivered = new Promise<void>((resolve) => h.subscribe('r', first, { deliver: ({ event }) => (got.push((event as { status: string }).status), resolve()), end() {} }));
    await delivered;
    expect(got).toEqual(['succeeded']);
  });

  it('catches up with an entry whose message was lost within one sweep', async () => {
    const events = new RunEventsService(store, hub(200));
    await append('r', 'running');
    const follower = collect(events, 'r');
    await follower.next(1);
    await append('r', 'succeeded', false);
    expect(await follower.next(2)).toEqual(['running', 'succeeded']);
  });

  it('drops a stream Redis refuses to read, ending only its own followers', async () => {
    const events = new RunEventsService(store, hub());
    await append('good', 'running');
    await append('bad', 'running');
    const good = collect(events, 'good');
    const bad = collect(events, 'bad');
    await Promise.all([good.next(1), bad.next(1)]);
    // The bad run's stream becomes a string: every XRANGE of it fails with WRONGTYPE.
    await redis.del(store.keys.events('bad'));
    await redis.set(store.keys.events('bad'), 'not a stream');
    await redis.publish(runEventsChannel(prefix, 'bad'), `${Date.now() + 1000}-0`);
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
    await write('r', ['e', '{not json']);
    await write('r', ['x', 'y']);
    await append('r', 'succeeded');
    expect(await follower.next(2)).toEqual(['running', 'succeeded']);
  });

  it('delivers what was written while its subscriber connection was down, once it is back', async () => {
    // Sweeps far apart: only the reconnection can deliver what was announced while it was down.
    const events = new RunEventsService(store, hub(10 * 60_000));
    const subscriberId = async (): Promise<string> => {
      for (;;) {
        const line = (await subscriberConnections()).find((l) => / sub=[1-9]/.test(l));
        if (line) return /\bid=(\d+)/.exec(line)![1]!;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    await append('a', 'running');
    const first = collect(events, 'a');
    await first.next(1);
    const before = await subscriberId();
    // What a Redis restart does to the subscriber: its connection, and its subscriptions, are gone.
    await redis.client('KILL', 'ID', before);
    await append('a', 'node-done');
    expect(await first.next(2)).toEqual(['running', 'node-done']);
    // Delivered through a new connection (the hub subscribed again), not the killed one.
    expect(await subscriberId()).not.toBe(before);
    await append('a', 'succeeded');
    expect(await first.next(3)).toEqual(['running', 'node-done', 'succeeded']);
    // And a stream followed after the reconnection is served as usual.
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
