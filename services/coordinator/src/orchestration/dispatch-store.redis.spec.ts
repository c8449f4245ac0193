import { QUEUE_NAMES, queuePrefix } from '@podflow/protocol';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { dispatchPriority, type TenantDispatch } from '../tenancy/dispatch-policy';
import { DispatchStore } from './dispatch-store';

// Fair dispatch's admission script on a real Redis (REDIS_URL, started by `npm test`), with the
// order checked by a real BullMQ worker taking the jobs one at a time.
const redisUrl = process.env.REDIS_URL;
if (!redisUrl) throw new Error('REDIS_URL is not set: run this suite through `npm test`, which starts a private redis-server');

let redis: Redis;
let queue: Queue;
let store: DispatchStore;
let prefix: string;

beforeEach(() => {
  redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  prefix = queuePrefix(`dispatch-${randomUUID().slice(0, 8)}`, QUEUE_NAMES.exec);
  queue = new Queue(QUEUE_NAMES.exec, { connection: redis, prefix });
  store = new DispatchStore(redis, queue);
});

afterEach(async () => {
  await queue.obliterate({ force: true });
  const keys = await redis.keys(`${prefix}:dispatch:*`);
  if (keys.length > 0) await redis.del(...keys);
  await queue.close();
  redis.disconnect();
});

const one: TenantDispatch = { weight: 1, maxInFlight: 10_000 };

/** Admits `count` executions of `tenant` and adds their jobs with the priorities admission gives. */
async function flood(tenant: string, count: number, dispatch = one, globalMax = 1_000_000): Promise<number> {
  const ids = Array.from({ length: count }, (_, i) => `${tenant}.${randomUUID().slice(0, 6)}.${i}`);
  const { admitted, start, shift, batch } = await store.admit(tenant, ids, dispatch, globalMax, Date.now());
  if (admitted > 0) {
    await queue.addBulk(ids.slice(0, admitted).map((id, i) => ({ name: 'exec', data: { tenant }, opts: { jobId: id, priority: dispatchPriority(start, i, dispatch.weight, shift) } })));
    await store.added(batch);
  }
  return admitted;
}

/** Takes `count` jobs one at a time, as a worker would, and returns their tenants in order. */
async function serve(count: number): Promise<string[]> {
  const order: string[] = [];
  let worker: Worker | undefined;
  const connection = redis.duplicate();
  await new Promise<void>((resolve) => {
    worker = new Worker(
      QUEUE_NAMES.exec,
      async (job) => {
        order.push(job.data.tenant);
        await store.finished(job.data.tenant, [job.id!]);
        if (order.length === count) resolve();
      },
      { connection, prefix, concurrency: 1 },
    );
  });
  await worker!.close();
  connection.disconnect();
  return order.slice(0, count);
}

describe('DispatchStore (fair dispatch on a real Redis)', () => {
  it("enforces a tenant's cap across calls and frees it as results arrive", async () => {
    const capped = { weight: 1, maxInFlight: 3 };
    const ids = ['e1', 'e2', 'e3', 'e4', 'e5'];
    expect((await store.admit('acme', ids, capped, 1_000_000, 1)).admitted).toBe(3);
    expect((await store.admit('acme', ['e4', 'e5'], capped, 1_000_000, 2)).admitted).toBe(0);
    // Another tenant is not affected.
    expect((await store.admit('globex', ['g1'], capped, 1_000_000, 3)).admitted).toBe(1);
    await store.finished('acme', ['e1', 'e2']);
    expect((await store.admit('acme', ['e4', 'e5'], capped, 1_000_000, 4)).admitted).toBe(2);
    expect(await store.inFlight('acme')).toBe(3);
    // An id admitted twice (an outbox entry carried out again after a crash) counts once.
    expect((await store.admit('globex', ['g1'], capped, 1_000_000, 5)).admitted).toBe(1);
    expect(await store.inFlight('globex')).toBe(1);
  });

  it('finishedSoon gathers results arriving together and removes them all', async () => {
    await store.admit('acme', ['a1', 'a2', 'a3'], one, 1_000_000, 1);
    await store.admit('globex', ['g1'], one, 1_000_000, 1);
    await Promise.all([store.finishedSoon('acme', ['a1']), store.finishedSoon('acme', ['a2']), store.finishedSoon('globex', ['g1'])]);
    expect(await store.inFlight('acme')).toBe(1);
    expect(await store.inFlight('globex')).toBe(0);
    await store.finishedSoon('acme', ['a3']);
    expect(await store.inFlight('acme')).toBe(0);
  });

  it('counts batches admitted but not yet added against the global cap (two coordinators admitting at once)', async () => {
    const first = await store.admit('acme', ['a1', 'a2', 'a3', 'a4'], one, 4, Date.now());
    expect(first.admitted).toBe(4);
    // Its jobs are not in exec yet: another admission must not see room.
    expect((await store.admit('globex', ['g1', 'g2', 'g3'], one, 4, Date.now())).admitted).toBe(0);
    await queue.addBulk(['a1', 'a2', 'a3', 'a4'].map((id) => ({ name: 'exec', data: {}, opts: { jobId: id, priority: 1 } })));
    await store.added(first.batch);
    expect((await store.admit('globex', ['g1'], one, 4, Date.now())).admitted).toBe(0);
  });

  it('enforces the global cap from what exec holds', async () => {
    await queue.addBulk(Array.from({ length: 4 }, (_, i) => ({ name: 'exec', data: {}, opts: { jobId: `other-${i}` } })));
    expect((await store.admit('acme', ['a', 'b', 'c'], one, 6, 1)).admitted).toBe(2);
  });

  it('serves a light tenant at once behind a flood: it starts level with the head of the queue', async () => {
    await flood('heavy', 200);
    expect(await serve(50)).toEqual(Array(50).fill('heavy'));
    await flood('light', 5);
    const order = await serve(12);
    // Round robin from the head: light never waits behind more than one heavy execution.
    expect(order.join(',')).toBe('heavy,light,heavy,light,heavy,light,heavy,light,heavy,light,heavy,heavy');
  });

  it('gives tenants flooding together service in proportion to their weights', async () => {
    await flood('gold', 60, { weight: 2, maxInFlight: 10_000 });
    await flood('basic', 60, one);
    const order = await serve(60);
    const gold = order.filter((t) => t === 'gold').length;
    expect(gold).toBeGreaterThanOrEqual(39);
    expect(gold).toBeLessThanOrEqual(41);
  });

  it("does not let a tenant's later batches jump its own backlog: they queue behind it, level with others", async () => {
    await flood('heavy', 30);
    await flood('heavy', 30); // a second run of the same tenant
    await flood('light', 3);
    const order = await serve(8);
    expect(order.filter((t) => t === 'light')).toHaveLength(3);
    expect(order.indexOf('light')).toBeLessThanOrEqual(1);
  });

  it("starts a batch level with another tenant's batch admitted a moment before, whose jobs are not in exec yet", async () => {
    const early = ['e0', 'e1', 'e2', 'e3'];
    const first = await store.admit('early', early, one, 1_000_000, Date.now());
    // The early tenant's jobs are not added yet: the prioritized set is still empty.
    const second = await store.admit('late', ['l0', 'l1'], one, 1_000_000, Date.now());
    expect(second.start).toBe(first.start);
    // Once nothing was admitted for a while, an empty queue means everything was served: a
    // newcomer starts after every tag handed out, level with the tenants that were served.
    const later = await store.admit('later', ['x0'], one, 1_000_000, Date.now() + 5_000);
    expect(later.start).toBe(4);
  });

  it('moves virtual time on while exec drains as fast as it fills: a steady tenant is not put behind a newcomer', async () => {
    for (let i = 0; i < 40; i++) {
      await flood('steady', 1);
      expect(await serve(1)).toEqual(['steady']);
    }
    await flood('newcomer', 30);
    await flood('steady', 1);
    const order = await serve(31);
    expect(order.indexOf('steady')).toBeLessThanOrEqual(2);
  });

  it('never moves virtual time back when an old job (a retry) is back at the head', async () => {
    await flood('heavy', 60);
    expect(await serve(30)).toEqual(Array(30).fill('heavy'));
    await flood('light', 1); // an admission sees the head where service is
    expect(await serve(2)).toEqual(['heavy', 'light']);
    // A job at an old level, as a retry comes back with its original priority.
    await queue.add('exec', { tenant: 'retry' }, { jobId: 'old-retry', priority: 1 });
    await flood('newcomer', 20);
    const order = await serve(11);
    expect(order[0]).toBe('retry');
    // The newcomer interleaves with the heavy tenant's remaining work instead of taking every slot
    // (it may lead by one level: the retry hides the progress made since the last admission).
    const rest = order.slice(1);
    expect(rest.filter((t) => t === 'heavy')).toHaveLength(5);
    expect(rest.every((t, i) => i === 0 || t !== rest[i - 1])).toBe(true);
  });

  it('keeps the order of waiting jobs when levels are shifted back into BullMQ range', async () => {
    await redis.hset(`${prefix}:dispatch:state`, 'highest', String(2 ** 20 - 100), 'seen', String(2 ** 20 - 100), 'shift', '0');
    await flood('a', 50); // levels just below 2^20: no shift yet
    await flood('b', 50); // starts level with a
    await flood('a', 200); // past 2^20: the shift moves, waiting jobs move down with it
    const shift = Number(await redis.hget(`${prefix}:dispatch:state`, 'shift'));
    expect(shift).toBeGreaterThan(2 ** 20 - 200);
    const order = await serve(100);
    // Still round robin between a's first batch and b, not a's newest batch first.
    expect(order.filter((t) => t === 'b').length).toBeGreaterThanOrEqual(45);
  });

  it('lets an execution admitted before a crash in again without new room', async () => {
    const capped = { weight: 1, maxInFlight: 2 };
    expect((await store.admit('acme', ['r1', 'r2'], capped, 1_000_000, 1)).admitted).toBe(2);
    // The coordinator died before adding the jobs; the next owner carries the outbox out again.
    expect((await store.admit('acme', ['r1', 'r2', 'r3'], capped, 1_000_000, 2)).admitted).toBe(2);
    expect(await store.inFlight('acme')).toBe(2);
  });

  it('keeps priorities within BullMQ range however far virtual time has moved', async () => {
    await redis.hset(`${prefix}:dispatch:state`, 'highest', String(2 ** 21 + 17), 'shift', '0', 'tag:acme', String(2 ** 21 + 17));
    const ids = Array.from({ length: 5 }, (_, i) => `x${i}`);
    const { admitted, start, shift } = await store.admit('acme', ids, one, 1_000_000, Date.now());
    const priorities = ids.slice(0, admitted).map((_, i) => dispatchPriority(start, i, 1, shift));
    // The virtual time (just below the batch) maps to 1.
    expect(priorities).toEqual([2, 3, 4, 5, 6]);
    await expect(queue.addBulk(ids.map((id, i) => ({ name: 'exec', data: {}, opts: { jobId: id, priority: priorities[i] } })))).resolves.toHaveLength(5);
  });

  it('reconcile: an execution whose job finished or vanished without a result stops counting; a queued one stays', async () => {
    await flood('acme', 2);
    await store.admit('acme', ['lost-without-a-job'], one, 1_000_000, Date.now() - 120_000);
    expect(await store.inFlight('acme')).toBe(3);
    expect(await store.reconcile(60_000, Date.now())).toBe(1);
    expect(await store.inFlight('acme')).toBe(2);
    // Young entries are not even looked at.
    expect(await store.reconcile(60_000, Date.now())).toBe(0);
    expect(await store.reconcile(0, Date.now() + 1)).toBe(0);
    expect(await store.inFlight('acme')).toBe(2);
  });
});
