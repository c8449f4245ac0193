import { Redis } from 'ioredis';
import { LuaScript } from './lua-script';

// A real Redis (REDIS_URL, started by `npm test`).
const redisUrl = process.env.REDIS_URL;
if (!redisUrl) throw new Error('REDIS_URL is not set: run this suite through `npm test`, which starts a private redis-server');

describe('LuaScript', () => {
  let redis: Redis;
  const script = new LuaScript(`return {KEYS[1], ARGV[1], ARGV[2]}`);

  beforeAll(() => {
    redis = new Redis(redisUrl);
  });
  afterAll(() => redis.disconnect());

  it('runs by SHA1 once the server knows the script', async () => {
    await redis.script('LOAD', script.source);
    const before = await evalCalls(redis);
    expect(await script.run(redis, ['k'], ['a', 7])).toEqual(['k', 'a', '7']);
    expect(await evalCalls(redis)).toEqual({ eval: before.eval, evalsha: before.evalsha + 1 });
  });

  it('falls back to EVAL once when the server does not know it (restart, SCRIPT FLUSH), then uses the SHA1 again', async () => {
    await redis.script('FLUSH');
    expect(await script.run(redis, ['k'], ['b', 'c'])).toEqual(['k', 'b', 'c']);
    const before = await evalCalls(redis);
    expect(await script.run(redis, ['k'], ['d', 'e'])).toEqual(['k', 'd', 'e']);
    expect(await evalCalls(redis)).toEqual({ eval: before.eval, evalsha: before.evalsha + 1 });
  });

  it('passes a script error through', async () => {
    const failing = new LuaScript(`return redis.call('INCR', KEYS[1])`);
    await redis.set('lua-script-spec-text', 'not a number');
    await expect(failing.run(redis, ['lua-script-spec-text'], [])).rejects.toThrow(/not an integer/);
  });
});

/** Calls of EVAL and EVALSHA the server has counted (INFO commandstats). */
async function evalCalls(redis: Redis): Promise<{ eval: number; evalsha: number }> {
  const info = await redis.info('commandstats');
  const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
  return { eval: calls('eval'), evalsha: calls('evalsha') };
}
