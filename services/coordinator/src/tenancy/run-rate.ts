import { Inject, Injectable } from '@nestjs/common';
import { PodflowError } from '@podflow/protocol';
import { LuaScript, type RedisClient } from '@podflow/redis';
import type { CoordinatorConfig } from '../config';
import { CONFIG, REDIS } from '../tokens';
import { TenantDirectory } from './tenant-directory';

const WINDOW_MS = 60_000;

/** Counts one run in the window's counter, which expires a little after the window. KEYS: counter. Returns the count. */
const COUNT = new LuaScript(`
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], 70000) end
return count
`);

/**
 * Runs a tenant may start per minute: its record's `runsPerMinute` (admin API), else
 * TENANT_RUNS_PER_MINUTE (0: no limit). Fixed one-minute windows counted in Redis (the tenant's
 * slot), so every coordinator shares them; a window boundary may let up to twice the limit
 * through within a minute, never more. Past it: 429 TOO_MANY_REQUESTS naming the limit, with
 * Retry-After until the window ends; the submissions queue delays the job until then instead.
 */
@Injectable()
export class RunRateLimiter {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    private readonly directory: TenantDirectory,
  ) {}

  /** Counts one run of the tenant. @throws PodflowError TOO_MANY_REQUESTS (details.retryAfterSeconds) past its limit. */
  async take(tenantId: string, now = Date.now()): Promise<void> {
    const limit = (await this.directory.tenantSettings(tenantId)).runsPerMinute ?? this.config.TENANT_RUNS_PER_MINUTE;
    if (limit === 0) return;
    const window = Math.floor(now / WINDOW_MS);
    const count = Number(await COUNT.run(this.redis, [`${this.config.QUEUE_PREFIX}:{t:${tenantId}}:runs-per-minute:${window}`], []));
    if (count <= limit) return;
    const retryAfterSeconds = Math.max(1, Math.ceil(((window + 1) * WINDOW_MS - now) / 1000));
    throw new PodflowError(
      'TOO_MANY_REQUESTS',
      `tenant "${tenantId}" may start ${limit} runs per minute and has this minute (runsPerMinute: the tenant's setting, else TENANT_RUNS_PER_MINUTE); retry after ${retryAfterSeconds} s`,
      { retryAfterSeconds, limit: 'runsPerMinute', value: limit },
    );
  }
}
