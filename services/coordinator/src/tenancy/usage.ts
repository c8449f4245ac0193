import { Inject, Injectable } from '@nestjs/common';
import { PodflowError, type ExecResult } from '@podflow/protocol';
import { LuaScript, type RedisClient } from '@podflow/redis';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { CONFIG, LOGGER, REDIS } from '../tokens';

const HOUR_MS = 3_600_000;
/** Hourly usage is kept this long. */
const KEEP_SECONDS = 400 * 24 * 3600;
/** A result counted once even if its message is delivered again within this long. */
const DEDUPE_SECONDS = 6 * 3600;
/** Tenants remembered as listed (past it, the SADD is simply sent again). */
const LISTED_MAX = 100_000;
/** Longest range one usage query may cover. */
export const MAX_USAGE_RANGE_MS = 93 * 24 * HOUR_MS;
/** The latest time a JavaScript Date holds. */
const MAX_TIME_MS = 8.64e15;

/** What is counted per tenant and hour. */
export const USAGE_FIELDS = ['executions', 'succeeded', 'failed', 'executionMs', 'files', 'fileBytes', 'peakMemoryBytes'] as const;
/** Fields whose total over hours is their largest value, not their sum. */
const MAX_FIELDS = new Set<UsageField>(['peakMemoryBytes']);
export type UsageField = (typeof USAGE_FIELDS)[number];
export type UsageTotals = Record<UsageField, number>;

/**
 * Adds one tenant-hour's results, each counted once (its execution id is remembered for
 * DEDUPE_SECONDS: a result message delivered again after a crash adds nothing). KEYS: the hour's
 * counters, the hour's counted ids. ARGV: keepSeconds, dedupeSeconds, then per result:
 * executionId, succeeded (1/0), executionMs, files, fileBytes, peakMemoryBytes ('' = not measured).
 * The message's sums go in with one HINCRBY per field (a message carries a worker's batch).
 */
const ADD_USAGE = new LuaScript(`
local added, succeeded, ms, files, bytes, peak = 0, 0, 0, 0, 0, nil
for i = 3, #ARGV, 6 do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    added = added + 1
    if ARGV[i + 1] == '1' then succeeded = succeeded + 1 end
    ms = ms + tonumber(ARGV[i + 2])
    files = files + tonumber(ARGV[i + 3])
    bytes = bytes + tonumber(ARGV[i + 4])
    local measured = tonumber(ARGV[i + 5])
    if measured and (peak == nil or measured > peak) then peak = measured end
  end
end
if added > 0 then
  redis.call('HINCRBY', KEYS[1], 'executions', added)
  if succeeded > 0 then redis.call('HINCRBY', KEYS[1], 'succeeded', succeeded) end
  if added > succeeded then redis.call('HINCRBY', KEYS[1], 'failed', added - succeeded) end
  -- Passed as whole-number strings, however this Redis formats Lua numbers (HINCRBY takes no exponent form).
  redis.call('HINCRBY', KEYS[1], 'executionMs', string.format('%d', ms))
  redis.call('HINCRBY', KEYS[1], 'files', string.format('%d', files))
  redis.call('HINCRBY', KEYS[1], 'fileBytes', string.format('%d', bytes))
  if peak and peak > tonumber(redis.call('HGET', KEYS[1], 'peakMemoryBytes') or '0') then redis.call('HSET', KEYS[1], 'peakMemoryBytes', string.format('%d', peak)) end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return added
`);

const zero = (): UsageTotals => Object.fromEntries(USAGE_FIELDS.map((f) => [f, 0])) as UsageTotals;

/**
 * Usage accounting per tenant: executions (succeeded, failed), execution time as the sandboxes
 * measured it, files stored and their bytes, and the largest peak memory of one execution (where
 * the driver measures it: the process driver's memory cgroup), in hourly buckets (the tenant's
 * hash slot), counted when results arrive.
 */
@Injectable()
export class UsageStore {
  /** Tenants this process has put in the usage tenants set already. */
  private readonly listed = new Set<string>();

  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  private hourKey(tenantId: string, hour: number): string {
    return `${this.config.QUEUE_PREFIX}:{t:${tenantId}}:usage:${hour}`;
  }

  private get tenantsKey(): string {
    return `${this.config.QUEUE_PREFIX}:{o}:usage-tenants`;
  }

  /** Counts finished results, by the hour they arrived in. Never throws: accounting must not hold results up. */
  async record(results: readonly ExecResult[], receivedAt: number): Promise<void> {
    const hour = Math.floor(receivedAt / HOUR_MS);
    const byTenant = new Map<string, ExecResult[]>();
    for (const result of results) {
      if (typeof result?.tenantId !== 'string' || typeof result.executionId !== 'string') continue;
      byTenant.set(result.tenantId, [...(byTenant.get(result.tenantId) ?? []), result]);
    }
    try {
      await Promise.all(
        [...byTenant].map(async ([tenantId, list]) => {
          const args = list.flatMap((r) => {
            const files = r.files?.elements ?? [];
            const bytes = files.reduce((sum, f) => sum + (Number.isFinite(f.size) ? Math.max(0, Math.floor(f.size)) : 0), 0);
            const ms = Number.isFinite(r.timings?.executionMs) ? Math.max(0, Math.round(r.timings.executionMs)) : 0;
            const peak = r.peakMemoryBytes;
            const measured = typeof peak === 'number' && Number.isFinite(peak) && peak > 0 ? String(Math.floor(peak)) : '';
            return [r.executionId, r.status === 'succeeded' ? '1' : '0', String(ms), String(files.length), String(bytes), measured];
          });
          const key = this.hourKey(tenantId, hour);
          await ADD_USAGE.run(this.redis, [key, `${key}:counted`], [String(KEEP_SECONDS), String(DEDUPE_SECONDS), ...args]);
          // Listed once per process, not once per result message (this runs on every result).
          if (!this.listed.has(tenantId)) {
            await this.redis.sadd(this.tenantsKey, tenantId);
            if (this.listed.size < LISTED_MAX) this.listed.add(tenantId);
          }
        }),
      );
    } catch (error) {
      this.logger.warn({ err: error }, 'could not count usage of finished executions');
    }
  }

  /** A tenant's usage from `from` to `to` (epoch ms, whole hours containing them): totals and non-empty hours. */
  async usage(tenantId: string, from: number, to: number) {
    const hours: number[] = [];
    for (let h = Math.floor(from / HOUR_MS); h <= Math.floor(to / HOUR_MS); h++) hours.push(h);
    const buckets = await Promise.all(hours.map((h) => this.redis.hgetall(this.hourKey(tenantId, h))));
    const total = zero();
    const perHour: Array<{ hour: string } & UsageTotals> = [];
    buckets.forEach((bucket, i) => {
      if (Object.keys(bucket).length === 0) return;
      const counts = zero();
      for (const field of USAGE_FIELDS) {
        counts[field] = Number(bucket[field] ?? 0);
        total[field] = MAX_FIELDS.has(field) ? Math.max(total[field], counts[field]) : total[field] + counts[field];
      }
      perHour.push({ hour: new Date(hours[i]! * HOUR_MS).toISOString(), ...counts });
    });
    return { tenantId, from: new Date(Math.floor(from / HOUR_MS) * HOUR_MS).toISOString(), to: new Date((Math.floor(to / HOUR_MS) + 1) * HOUR_MS).toISOString(), total, hours: perHour };
  }

  /** Every tenant's usage over the range (the admin API). */
  async allTenants(from: number, to: number) {
    const tenants = (await this.redis.smembers(this.tenantsKey)).sort();
    return Promise.all(tenants.map((tenantId) => this.usage(tenantId, from, to)));
  }
}

/**
 * `from` and `to` of a usage query: ISO-8601 or epoch ms; default the last 24 hours.
 * @throws PodflowError BAD_REQUEST naming the parameter.
 */
export function usageRange(from: string | undefined, to: string | undefined, now = Date.now()): { from: number; to: number } {
  const parse = (value: string | undefined, name: string, fallback: number): number => {
    if (value === undefined || value === '') return fallback;
    const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
    if (!Number.isFinite(ms)) throw new PodflowError('BAD_REQUEST', `${name} must be an ISO-8601 time or epoch milliseconds, got "${value.slice(0, 60)}"`);
    // A Date holds ±8.64e15 ms; a range ending past it has no hour to report (and toISOString would throw).
    if (Math.abs(ms) > MAX_TIME_MS - MAX_USAGE_RANGE_MS) throw new PodflowError('BAD_REQUEST', `${name} is ${value.slice(0, 60)}, beyond the times podflow can report (epoch milliseconds up to ${MAX_TIME_MS - MAX_USAGE_RANGE_MS})`);
    return ms;
  };
  const end = parse(to, 'to', now);
  const start = parse(from, 'from', end - 24 * HOUR_MS);
  if (start > end) throw new PodflowError('BAD_REQUEST', `from (${new Date(start).toISOString()}) is after to (${new Date(end).toISOString()})`);
  if (end - start > MAX_USAGE_RANGE_MS) throw new PodflowError('BAD_REQUEST', `a usage query covers at most 93 days; ask for several ranges`);
  return { from: start, to: end };
}
