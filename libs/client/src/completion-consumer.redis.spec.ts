import { COMPLETION_FIELD, replyStreamKey, type RunCompletion } from '@podflow/protocol';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { CompletionConsumer } from './completion-consumer';

// A real Redis (REDIS_URL, started by `npm test`): what a consumer does when handlers fail,
// consumers die and the stream expires.
const redisUrl = process.env.REDIS_URL;
if (!redisUrl) throw new Error('REDIS_URL is not set: run this suite through `npm test`, which starts a private redis-server');

const completion = (runId: string): RunCompletion => ({ runId, tenantId: 't', status: 'succeeded', correlationId: runId, finishedAt: new Date(0).toISOString() });

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('CompletionConsumer on a real Redis', () => {
  let redis: Redis;
  let prefix: string;
  const consumers: CompletionConsumer[] = [];
  const append = (runId: string) => redis.xadd(replyStreamKey(prefix, 'svc'), '*', COMPLETION_FIELD, JSON.stringify(completion(runId)));
  const consume = (handler: (c: RunCompletion) => Promise<void>, name = 'c1') => {
    const consumer = new CompletionConsumer({ redis, prefix, replyTo: 'svc', consumer: name, claimIdleMs: 400, handler });
    consumers.push(consumer);
    return consumer;
  };

  beforeEach(() => {
    redis = new Redis(redisUrl!, { maxRetriesPerRequest: null });
    prefix = `client-${randomUUID().slice(0, 8)}`;
  });
  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.close()));
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('reads what was written before it started, and a handler that throws neither blocks the others nor loses its completion', async () => {
    await append('r1');
    const seen: string[] = [];
    let failuresLeft = 2;
    await consume(async (c) => {
      if (c.runId === 'r1' && failuresLeft-- > 0) throw new Error('not yet');
      seen.push(c.runId!);
    }).start();
    await append('r2');
    await until('r2, while r1 keeps failing', () => seen.includes('r2'));
    await until('r1 after its failures', () => seen.includes('r1'));
    expect(seen.filter((id) => id === 'r1')).toHaveLength(1);
    expect((await redis.xpending(replyStreamKey(prefix, 'svc'), 'podflow'))[0]).toBe(0);
  });

  it("takes over what a dead consumer of the group held, after claimIdleMs", async () => {
    const stream = replyStreamKey(prefix, 'svc');
    await redis.xgroup('CREATE', stream, 'podflow', '0', 'MKSTREAM');
    await append('held');
    // A consumer that read the entry and died before acknowledging it.
    await redis.xreadgroup('GROUP', 'podflow', 'dead', 'COUNT', 10, 'STREAMS', stream, '>');
    const seen: string[] = [];
    await consume(async (c) => void seen.push(c.runId!), 'alive').start();
    await until('the dead consumer\'s entry', () => seen.includes('held'));
    expect(seen).toEqual(['held']);
  });

  it('goes on after the stream expired and took its group along', async () => {
    const seen: string[] = [];
    await consume(async (c) => void seen.push(c.runId!)).start();
    await append('before');
    await until('the first completion', () => seen.includes('before'));
    await redis.del(replyStreamKey(prefix, 'svc'));
    await append('after');
    await until('a completion appended to the new stream', () => seen.includes('after'));
  });
});
