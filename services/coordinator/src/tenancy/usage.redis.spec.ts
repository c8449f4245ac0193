import type { ExecResult } from '@podflow/protocol';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { loadCoordinatorConfig } from '../config';
import { UsageStore, usageRange } from './usage';

// Usage accounting on a real Redis (REDIS_URL, started by `npm test`).
const redisUrl = process.env.REDIS_URL;
if (!redisUrl) throw new Error('REDIS_URL is not set: run this suite through `npm test`, which starts a private redis-server');

const logger = { warn() {} } as unknown as Logger;
const HOUR = 3_600_000;

function result(tenantId: string, executionId: string, status: 'succeeded' | 'failed', executionMs: number, fileSizes: number[] = [], peakMemoryBytes?: number): ExecResult {
  return {
    executionId,
    tenantId,
    runId: 'r',
    nodeId: 'n',
    attempt: 1,
    status,
    workerId: 'w',
    logs: { stdout: '', stderr: '', truncated: false },
    warnings: [],
    timings: { enqueuedAt: 0, startedAt: 0, finishedAt: 0, queueWaitMs: 0, executionMs },
    ...(peakMemoryBytes !== undefined ? { peakMemoryBytes } : {}),
    ...(fileSizes.length ? { files: { elements: fileSizes.map((size, i) => ({ name: `f${i}`, path: `f${i}`, size, content_type: 'text/plain', sha256: '', download_url: '', expires_at: '', key: '' })) } } : {}),
  };
}

describe('UsageStore', () => {
  let redis: Redis;
  let usage: UsageStore;
  let prefix: string;
  beforeEach(() => {
    redis = new Redis(redisUrl);
    prefix = `usage-${randomUUID().slice(0, 8)}`;
    usage = new UsageStore(redis, loadCoordinatorConfig({ REDIS_URL: redisUrl, QUEUE_PREFIX: prefix, PODFLOW_API_KEYS: 'k=t', FILE_URL_SECRET: 'x'.repeat(32), STORAGE_DIR: '/tmp/x' }), logger);
  });
  afterEach(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('counts each execution once per tenant and hour, even when its result arrives twice', async () => {
    const at = Date.UTC(2026, 11, 1, 10, 30);
    // Peak memory where measured (e2 was not): the hour's largest, and the range's largest.
    const batch = [result('acme', 'e1', 'succeeded', 120, [10, 20], 50_000_000), result('acme', 'e2', 'failed', 30), result('globex', 'g1', 'succeeded', 5, [], 7)];
    await usage.record(batch, at);
    await usage.record([batch[0]!], at + 60_000); // the same message delivered again
    await usage.record([result('acme', 'e3', 'succeeded', 50, [], 20_000_000)], at + HOUR); // the next hour
    const acme = await usage.usage('acme', at - HOUR, at + HOUR);
    expect(acme.total).toEqual({ executions: 3, succeeded: 2, failed: 1, executionMs: 200, files: 2, fileBytes: 30, peakMemoryBytes: 50_000_000 });
    expect(acme.hours.map((h) => [h.hour, h.executions, h.peakMemoryBytes])).toEqual([
      ['2026-12-01T10:00:00.000Z', 2, 50_000_000],
      ['2026-12-01T11:00:00.000Z', 1, 20_000_000],
    ]);
    expect((await usage.usage('globex', at, at)).total.executions).toBe(1);
    expect((await usage.allTenants(at, at)).map((u) => [u.tenantId, u.total.executions])).toEqual([
      ['acme', 2],
      ['globex', 1],
    ]);
  });

  it('sums a message\'s results, large ones exactly', async () => {
    const at = Date.UTC(2026, 11, 1, 10, 30);
    const huge = 300_000_000_000_000; // 300 TB: sums of 15 digits
    await usage.record([result('acme', 'b1', 'succeeded', 1, [huge, huge], 9_000_000_000), result('acme', 'b2', 'succeeded', 2, [huge]), result('acme', 'b3', 'failed', 4)], at);
    expect((await usage.usage('acme', at, at)).total).toEqual({ executions: 3, succeeded: 2, failed: 1, executionMs: 7, files: 3, fileBytes: 3 * huge, peakMemoryBytes: 9_000_000_000 });
  });

  it('parses ranges and names a bad one', () => {
    const now = Date.UTC(2026, 11, 2);
    expect(usageRange(undefined, undefined, now)).toEqual({ from: now - 24 * HOUR, to: now });
    expect(usageRange('2026-12-01T00:00:00Z', String(now), now)).toEqual({ from: Date.UTC(2026, 11, 1), to: now });
    expect(() => usageRange('yesterday', undefined, now)).toThrow(/from must be an ISO-8601 time or epoch milliseconds, got "yesterday"/);
    expect(() => usageRange(String(now), String(now - 1), now)).toThrow(/is after to/);
    expect(() => usageRange('2025-01-01T00:00:00Z', undefined, now)).toThrow(/at most 93 days/);
    // Past what a Date holds: a 400 naming the parameter, not a RangeError from toISOString (a 500).
    expect(() => usageRange(undefined, '9000000000000000', now)).toThrow(/^to is 9000000000000000, beyond the times podflow can report/);
    expect(() => usageRange('99999999999999999999', '1', now)).toThrow(/^from is 99999999999999999999, beyond/);
    expect(() => usageRange('-271821-04-20T00:00:00Z', undefined, now)).toThrow(/^from is -271821-04-20T00:00:00Z, beyond/);
  });
});
