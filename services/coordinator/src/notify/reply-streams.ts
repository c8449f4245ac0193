import { COMPLETION_FIELD, replyStreamKey, type RunCompletion } from '@podflow/protocol';
import { LuaScript, type RedisClient } from '@podflow/redis';
import { createHash } from 'node:crypto';

/**
 * Append a completion once. KEYS: stream, sent marker. ARGV: completion JSON, retentionSeconds,
 * oldest id kept (MINID). The marker, in the stream's slot, makes a delivery carried out twice
 * (an outbox entry replayed after a crash) one entry; the stream forgets entries older than the
 * retention, and the stream itself expires when nothing was added for that long.
 */
const APPEND_ONCE = new LuaScript(`
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return false end
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[3], '*', '${COMPLETION_FIELD}', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return id
`);

/** Reply targets: one Redis stream per name (`<prefix>:{reply:<name>}:completions`), read by @podflow/client's CompletionConsumer. */
export class ReplyStreams {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly retentionSeconds: number,
  ) {}

  /**
   * Appends `completion` to the stream `replyTo` names, once per `deliveryId`: returns false when
   * it was appended before. At least once: the caller acknowledges its outbox entry only after this.
   */
  async append(replyTo: string, completion: RunCompletion, deliveryId: string, now = Date.now()): Promise<boolean> {
    const stream = replyStreamKey(this.prefix, replyTo);
    const marker = `${this.prefix}:{reply:${replyTo}}:sent:${createHash('sha256').update(deliveryId).digest('base64url')}`;
    const oldest = `${Math.max(0, now - this.retentionSeconds * 1000)}-0`;
    const id = await APPEND_ONCE.run(this.redis, [stream, marker], [JSON.stringify(completion), this.retentionSeconds, oldest]);
    return id !== null;
  }
}
