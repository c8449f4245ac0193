import { z } from 'zod';
import { checkRedisConfig, redisConfigShape, redisConnectionPlan } from './index';

const schema = z.object({ ...redisConfigShape }).superRefine(checkRedisConfig);
const issuesOf = (env: Record<string, string>) => (schema.safeParse(env).error?.issues ?? []).map((i) => `${i.path.join('.')}: ${i.message}`);
const planOf = (env: Record<string, string>) => redisConnectionPlan(schema.parse(env));

describe('redisConfigShape and redisConnectionPlan', () => {
  it('connects to one Redis by URL, with maxRetriesPerRequest null for BullMQ; the URL keeps its own credentials', () => {
    expect(planOf({ REDIS_URL: 'redis://:s3cret@10.0.0.5:6380/2' })).toEqual({ mode: 'standalone', url: 'redis://:s3cret@10.0.0.5:6380/2', options: { maxRetriesPerRequest: null } });
    expect(planOf({ REDIS_URL: 'redis://10.0.0.5', REDIS_USERNAME: 'podflow', REDIS_PASSWORD: 'pw', REDIS_TLS: 'true' })).toEqual({
      mode: 'standalone',
      url: 'redis://10.0.0.5',
      options: { maxRetriesPerRequest: null, username: 'podflow', password: 'pw', tls: {} },
    });
    // rediss:// is TLS already; ioredis reads it from the URL.
    expect(planOf({ REDIS_URL: 'rediss://cache.internal:6379', REDIS_TLS: 'true' }).mode).toBe('standalone');
    expect(planOf({ REDIS_URL: 'rediss://cache.internal:6379', REDIS_TLS: 'true' })).not.toHaveProperty('options.tls');
  });

  it('connects to a Redis Cluster from seed nodes; every node, also those found later, gets the credentials', () => {
    const plan = planOf({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7001,redis-2', REDIS_PASSWORD: 'pw' });
    expect(plan).toEqual({
      mode: 'cluster',
      nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7001 }, { host: 'redis-2', port: 6379 }],
      options: { enableReadyCheck: true, redisOptions: { maxRetriesPerRequest: null, password: 'pw' } },
    });
    // The password may come with the nodes instead, as URLs; TLS from rediss:// or REDIS_TLS.
    const fromUrls = planOf({ REDIS_CLUSTER_NODES: 'rediss://app:pw@node-a:7000,rediss://app:pw@[::1]:7001' });
    expect(fromUrls).toMatchObject({
      mode: 'cluster',
      nodes: [{ host: 'node-a', port: 7000 }, { host: '::1', port: 7001 }],
      options: { enableReadyCheck: true, redisOptions: { maxRetriesPerRequest: null, username: 'app', password: 'pw', tls: {} }, dnsLookup: expect.any(Function) },
    });
  });

  it('connects through Redis Sentinel to the named master', () => {
    expect(planOf({ REDIS_SENTINELS: 's1:26379,s2', REDIS_SENTINEL_NAME: 'mymaster', REDIS_PASSWORD: 'pw', REDIS_SENTINEL_PASSWORD: 'spw' })).toEqual({
      mode: 'sentinel',
      options: {
        sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }],
        name: 'mymaster',
        role: 'master',
        maxRetriesPerRequest: null,
        password: 'pw',
        sentinelPassword: 'spw',
      },
    });
    expect(planOf({ REDIS_SENTINELS: 's1', REDIS_SENTINEL_NAME: 'm', REDIS_TLS: 'true' })).toMatchObject({ options: { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } });
  });

  it('needs exactly one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS, and says which to set', () => {
    expect(issuesOf({})).toEqual([expect.stringMatching(/^REDIS_URL: Redis is not configured: set exactly one of REDIS_URL .*REDIS_CLUSTER_NODES .*REDIS_SENTINELS with REDIS_SENTINEL_NAME/)]);
    expect(issuesOf({ REDIS_URL: '', REDIS_CLUSTER_NODES: '' })).toEqual([expect.stringMatching(/^REDIS_URL: Redis is not configured/)]);
    expect(issuesOf({ REDIS_URL: 'redis://a', REDIS_CLUSTER_NODES: 'b:7000' })).toEqual([expect.stringMatching(/^REDIS_CLUSTER_NODES: REDIS_URL and REDIS_CLUSTER_NODES are set: set exactly one/)]);
    expect(issuesOf({ REDIS_SENTINELS: 's1' })).toEqual([expect.stringMatching(/^REDIS_SENTINEL_NAME: REDIS_SENTINEL_NAME is required with REDIS_SENTINELS/)]);
    expect(issuesOf({ REDIS_URL: 'redis://a', REDIS_SENTINEL_NAME: 'm' })).toEqual([expect.stringMatching(/^REDIS_SENTINEL_NAME: REDIS_SENTINEL_NAME is only used with REDIS_SENTINELS/)]);
  });

  it('refuses malformed addresses and credentials given twice, without echoing passwords', () => {
    expect(issuesOf({ REDIS_URL: '127.0.0.1:6379' })).toEqual([expect.stringMatching(/^REDIS_URL: REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/)]);
    expect(issuesOf({ REDIS_URL: 'http://x' })).toEqual([expect.stringMatching(/^REDIS_URL: /)]);
    expect(issuesOf({ REDIS_CLUSTER_NODES: 'a:7000,b:99999' })).toEqual([expect.stringMatching(/^REDIS_CLUSTER_NODES: REDIS_CLUSTER_NODES: "b:99999" is not host:port/)]);
    expect(issuesOf({ REDIS_CLUSTER_NODES: ',' })).toEqual([expect.stringMatching(/names no host:port/)]);
    const withSecret = issuesOf({ REDIS_CLUSTER_NODES: 'redis://:hunter2@a:7000/x' });
    expect(withSecret).toEqual([expect.stringMatching(/is not host:port/)]);
    expect(withSecret.join('')).not.toContain('hunter2');
    expect(issuesOf({ REDIS_URL: 'redis://:pw@a', REDIS_PASSWORD: 'other' })).toEqual([expect.stringMatching(/^REDIS_URL: .*give the credentials in one place/)]);
    expect(issuesOf({ REDIS_CLUSTER_NODES: 'redis://:one@a:7000,redis://:two@b:7000' })).toEqual([expect.stringMatching(/different users or passwords/)]);
    expect(issuesOf({ REDIS_CLUSTER_NODES: 'redis://a:7000,rediss://b:7000' })).toEqual([expect.stringMatching(/mixes redis:\/\/ and rediss:\/\//)]);
    expect(issuesOf({ REDIS_SENTINELS: 'redis://:pw@s1', REDIS_SENTINEL_NAME: 'm' })).toEqual([expect.stringMatching(/REDIS_SENTINEL_PASSWORD/)]);
    expect(issuesOf({ REDIS_URL: 'redis://a', REDIS_TLS: 'yes' })).toEqual([expect.stringMatching(/^REDIS_TLS: REDIS_TLS must be "true" or "false"/)]);
  });

  it('refuses a QUEUE_PREFIX with a hash tag: podflow places its own', () => {
    expect(schema.parse({ REDIS_URL: 'redis://a' }).QUEUE_PREFIX).toBe('podflow');
    expect(issuesOf({ REDIS_URL: 'redis://a', QUEUE_PREFIX: '{podflow}' })).toEqual([expect.stringMatching(/^QUEUE_PREFIX: QUEUE_PREFIX "\{podflow\}" contains "\{" or "\}".*use e\.g\. "podflow"/)]);
  });

  it('refuses to plan from a configuration that skipped the checks', () => {
    const unchecked = z.object({ ...redisConfigShape }).parse({ REDIS_URL: 'redis://a', REDIS_CLUSTER_NODES: 'b:1' });
    expect(() => redisConnectionPlan(unchecked)).toThrow(/invalid Redis configuration: REDIS_URL and REDIS_CLUSTER_NODES are set/);
  });
});
