import { Inject, Injectable } from '@nestjs/common';
import { LuaScript, type RedisClient } from '@podflow/redis';
import { randomBytes } from 'node:crypto';
import type { CoordinatorConfig } from '../config';
import { CONFIG, REDIS } from '../tokens';

/** After a rotation, deliveries are signed with the previous secret too for this long, so receivers can switch over. */
export const ROTATION_GRACE_MS = 24 * 3600 * 1000;

/** Make `secret` current, the current one previous. KEYS: secrets hash. ARGV: tenant, secret, now. Returns 1 when there was one before. */
const ROTATE = new LuaScript(`
local current = redis.call('HGET', KEYS[1], ARGV[1])
local next = { current = ARGV[2] }
if current then
  next.previous = cjson.decode(current).current
  next.rotatedAt = tonumber(ARGV[3])
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(next))
if current then return 1 end
return 0
`);

interface StoredSecret {
  current: string;
  previous?: string;
  rotatedAt?: number;
}

/**
 * Each tenant's webhook signing secret (`{a}:webhook-secrets`, tenant → JSON). Per tenant, never
 * shared: a tenant that knows its own secret cannot forge deliveries to another tenant's receiver.
 * Created on first use; a rotation keeps the previous one signing for ROTATION_GRACE_MS.
 */
@Injectable()
export class WebhookSecrets {
  private readonly key: string;

  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(CONFIG) config: CoordinatorConfig,
  ) {
    this.key = `${config.QUEUE_PREFIX}:{a}:webhook-secrets`;
  }

  /** The tenant's current secret, created now if it has none. */
  async current(tenantId: string): Promise<string> {
    const stored = await this.read(tenantId);
    if (stored) return stored.current;
    await this.redis.hsetnx(this.key, tenantId, JSON.stringify({ current: newSecret() } satisfies StoredSecret));
    return (await this.read(tenantId))!.current;
  }

  /** Secrets a delivery is signed with now: the current one, and the previous one during its grace period. */
  async signing(tenantId: string, now = Date.now()): Promise<string[]> {
    const stored = await this.read(tenantId);
    if (!stored) return [await this.current(tenantId)];
    const inGrace = stored.previous !== undefined && stored.rotatedAt !== undefined && now - stored.rotatedAt < ROTATION_GRACE_MS;
    return inGrace ? [stored.current, stored.previous!] : [stored.current];
  }

  /** A new current secret; the old one keeps signing for ROTATION_GRACE_MS. Atomic: two rotations at once keep the one in between as `previous`. */
  async rotate(tenantId: string, now = Date.now()): Promise<{ secret: string; previousValidUntil: string | null }> {
    const secret = newSecret();
    const hadOne = (await ROTATE.run(this.redis, [this.key], [tenantId, secret, now])) === 1;
    return { secret, previousValidUntil: hadOne ? new Date(now + ROTATION_GRACE_MS).toISOString() : null };
  }

  private async read(tenantId: string): Promise<StoredSecret | undefined> {
    const json = await this.redis.hget(this.key, tenantId);
    return json ? (JSON.parse(json) as StoredSecret) : undefined;
  }
}

/** `whsec_` and 32 random bytes, base64url. */
function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}
