import { createHash } from 'node:crypto';
import type { RedisClient } from './redis-client';

/**
 * A Lua script sent by its SHA1 (EVALSHA) and loaded on first use: a busy coordinator runs its
 * scripts thousands of times a second, and EVAL would send and hash the whole text every time.
 * A server that does not know the script (a restart, a new cluster node, SCRIPT FLUSH) answers
 * NOSCRIPT, and the call is made once more with EVAL, which also caches it there.
 */
export class LuaScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: RedisClient, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}
