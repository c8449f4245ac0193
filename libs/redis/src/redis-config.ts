import { DEFAULT_KEY_PREFIX, keyPrefixProblem } from '@podflow/protocol';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import { z } from 'zod';

/** Helm and compose files often pass `""` for an unset value; treat it as unset. */
const unsetIfEmpty = (value: unknown) => (value === '' ? undefined : value);
const optionalString = z.preprocess(unsetIfEmpty, z.string().min(1).optional());

/**
 * The Redis settings every podflow process shares, as a zod shape to spread into the service's
 * own schema: `z.object({ ...redisConfigShape, ... }).superRefine(checkRedisConfig)`. Exactly one
 * of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS says where Redis is. The library reads no
 * environment itself.
 */
export const redisConfigShape = {
  /** One Redis: `redis://[[user]:password@]host[:port][/db]`, `rediss://` for TLS. */
  REDIS_URL: optionalString,
  /** Redis Cluster: comma-separated seed nodes, `host:port` or `redis[s]://[[user]:password@]host:port`. */
  REDIS_CLUSTER_NODES: optionalString,
  /** Redis Sentinel: comma-separated sentinels, `host:port` (port 26379 when left out). */
  REDIS_SENTINELS: optionalString,
  /** The master group name the sentinels watch (`sentinel monitor <name> ...`). */
  REDIS_SENTINEL_NAME: optionalString,
  /** ACL user and password of the data nodes (cluster nodes, the sentinels' master and replicas). */
  REDIS_USERNAME: optionalString,
  REDIS_PASSWORD: optionalString,
  /** Password of the sentinels themselves, when they have one (`requirepass` in sentinel.conf). */
  REDIS_SENTINEL_PASSWORD: optionalString,
  /** TLS to every Redis connection (`rediss://` in a URL says the same). */
  REDIS_TLS: z.enum(['true', 'false'], { message: 'REDIS_TLS must be "true" or "false"' }).default('false').transform((v) => v === 'true'),
  /** First part of every podflow key; no hash tag (podflow places its own, see keyPrefixProblem). */
  QUEUE_PREFIX: z.string().default(DEFAULT_KEY_PREFIX),
};

export type RedisConfig = z.output<z.ZodObject<typeof redisConfigShape>>;

export interface RedisAddress {
  host: string;
  port: number;
}

/**
 * How to reach Redis, as ioredis options: what `connectRedis` builds its client from. Pure data
 * (plus the DNS pass-through of TLS clusters), so the parsing is tested without a server.
 */
export type RedisConnectionPlan =
  | { mode: 'standalone'; url: string; options: RedisOptions }
  | { mode: 'sentinel'; options: RedisOptions }
  | { mode: 'cluster'; nodes: RedisAddress[]; options: ClusterOptions };

type Issue = [keyof RedisConfig, string];

/** The checks that span several fields; for `superRefine` on a service's config schema. */
export function checkRedisConfig(config: RedisConfig, ctx: z.RefinementCtx): void {
  for (const [path, message] of plan(config).issues) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [path], message });
}

/**
 * The connection `config` asks for. BullMQ blocks on these connections, so every data connection
 * has `maxRetriesPerRequest: null` (a command waits for Redis to come back instead of failing).
 * @throws Error naming every problem, for a configuration that skipped `checkRedisConfig`.
 */
export function redisConnectionPlan(config: RedisConfig): RedisConnectionPlan {
  const { result, issues } = plan(config);
  if (!result || issues.length > 0) throw new Error(`invalid Redis configuration: ${issues.map(([, message]) => message).join('; ')}`);
  return result;
}

const WHERE = 'set exactly one of REDIS_URL (one Redis), REDIS_CLUSTER_NODES (Redis Cluster) or REDIS_SENTINELS with REDIS_SENTINEL_NAME (Redis Sentinel)';

function plan(config: RedisConfig): { result?: RedisConnectionPlan; issues: Issue[] } {
  const issues: Issue[] = [];
  const prefixProblem = keyPrefixProblem(config.QUEUE_PREFIX);
  if (prefixProblem) issues.push(['QUEUE_PREFIX', prefixProblem]);
  const given = (['REDIS_URL', 'REDIS_CLUSTER_NODES', 'REDIS_SENTINELS'] as const).filter((name) => config[name] !== undefined);
  if (given.length === 0) issues.push(['REDIS_URL', `Redis is not configured: ${WHERE}`]);
  if (given.length > 1) issues.push([given[1]!, `${given.join(' and ')} are set: ${WHERE}`]);
  if (config.REDIS_SENTINELS === undefined) {
    for (const name of ['REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_PASSWORD'] as const) {
      if (config[name] !== undefined) issues.push([name, `${name} is only used with REDIS_SENTINELS, which is not set`]);
    }
  }
  if (given.length !== 1) return { issues };
  const tls = config.REDIS_TLS ? { tls: {} } : {};
  switch (given[0]) {
    case 'REDIS_URL': {
      const url = parseRedisUrl(config.REDIS_URL!);
      if (!url) {
        issues.push(['REDIS_URL', 'REDIS_URL must be a redis:// or rediss:// URL, e.g. redis://:password@127.0.0.1:6379']);
        return { issues };
      }
      const credentials = mergedCredentials(config, url.username || url.password ? [{ username: url.username, password: url.password }] : [], 'REDIS_URL', issues);
      const options: RedisOptions = {
        maxRetriesPerRequest: null,
        // Only what the URL does not say itself: ioredis lets the URL win.
        ...(url.username || url.password ? {} : credentials),
        ...(url.protocol === 'rediss:' ? {} : tls),
      };
      return { result: { mode: 'standalone', url: config.REDIS_URL!, options }, issues };
    }
    case 'REDIS_CLUSTER_NODES': {
      const entries = parseAddressList(config.REDIS_CLUSTER_NODES!, 'REDIS_CLUSTER_NODES', 6379, issues);
      if (!entries) return { issues };
      const schemes = new Set(entries.map((e) => e.scheme).filter(Boolean));
      if (schemes.size > 1) issues.push(['REDIS_CLUSTER_NODES', 'REDIS_CLUSTER_NODES mixes redis:// and rediss:// nodes: a cluster is reached with or without TLS, not both']);
      const credentials = mergedCredentials(config, entries.filter((e) => e.username || e.password), 'REDIS_CLUSTER_NODES', issues);
      const useTls = config.REDIS_TLS || schemes.has('rediss:');
      const options: ClusterOptions = {
        // Nodes found through CLUSTER SLOTS get these too: one user and password for the cluster.
        redisOptions: { maxRetriesPerRequest: null, ...credentials, ...(useTls ? { tls: {} } : {}) },
        enableReadyCheck: true,
        // With TLS the certificates name the hosts: connect by the names the cluster announces
        // instead of resolving them first (ioredis README, "Special note: AWS ElastiCache Clusters with TLS").
        ...(useTls ? { dnsLookup: (address: string, callback: (error: null, address: string) => void) => callback(null, address) } : {}),
      };
      return { result: { mode: 'cluster', nodes: entries.map(({ host, port }) => ({ host, port })), options }, issues };
    }
    case 'REDIS_SENTINELS': {
      const entries = parseAddressList(config.REDIS_SENTINELS!, 'REDIS_SENTINELS', 26379, issues);
      if (!config.REDIS_SENTINEL_NAME) issues.push(['REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_NAME is required with REDIS_SENTINELS: the master group name the sentinels watch (sentinel monitor <name> ...)']);
      if (!entries) return { issues };
      if (entries.some((e) => e.scheme || e.username || e.password)) {
        issues.push(['REDIS_SENTINELS', 'REDIS_SENTINELS takes host:port entries; set TLS with REDIS_TLS, the sentinels\' password with REDIS_SENTINEL_PASSWORD and the master\'s with REDIS_PASSWORD']);
      }
      const options: RedisOptions = {
        sentinels: entries.map(({ host, port }) => ({ host, port })),
        name: config.REDIS_SENTINEL_NAME,
        role: 'master',
        maxRetriesPerRequest: null,
        ...credentials(config),
        ...(config.REDIS_SENTINEL_PASSWORD ? { sentinelPassword: config.REDIS_SENTINEL_PASSWORD } : {}),
        ...(config.REDIS_TLS ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
      };
      return { result: { mode: 'sentinel', options }, issues };
    }
  }
}

function credentials(config: RedisConfig): { username?: string; password?: string } {
  return { ...(config.REDIS_USERNAME ? { username: config.REDIS_USERNAME } : {}), ...(config.REDIS_PASSWORD ? { password: config.REDIS_PASSWORD } : {}) };
}

/** REDIS_USERNAME/REDIS_PASSWORD, or the ones written in URLs; never two different ones. */
function mergedCredentials(config: RedisConfig, fromUrls: Array<{ username?: string; password?: string }>, variable: keyof RedisConfig, issues: Issue[]) {
  const fromEnv = credentials(config);
  if (fromUrls.length === 0) return fromEnv;
  if (fromEnv.username || fromEnv.password) {
    issues.push([variable, `${variable} carries a user or password and REDIS_USERNAME/REDIS_PASSWORD is set too: give the credentials in one place`]);
    return fromEnv;
  }
  const distinct = new Set(fromUrls.map((c) => `${c.username ?? ''}\n${c.password ?? ''}`));
  if (distinct.size > 1) issues.push([variable, `${variable} names different users or passwords: a cluster has one (or set REDIS_USERNAME/REDIS_PASSWORD)`]);
  const [first] = fromUrls;
  return { ...(first?.username ? { username: first.username } : {}), ...(first?.password ? { password: first.password } : {}) };
}

interface ParsedUrl {
  protocol: string;
  username: string;
  password: string;
  hostname: string;
  port: string;
  pathname: string;
}

function parseRedisUrl(raw: string): ParsedUrl | undefined {
  try {
    const url = new URL(raw);
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return undefined;
    if (!url.hostname) return undefined;
    return {
      protocol: url.protocol,
      username: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port,
      pathname: url.pathname,
    };
  } catch {
    return undefined;
  }
}

interface AddressEntry extends RedisAddress {
  scheme?: string;
  username?: string;
  password?: string;
}

/** `host:port` or `redis[s]://[[user]:password@]host[:port]` entries, comma-separated; undefined after an issue. */
function parseAddressList(raw: string, variable: keyof RedisConfig, defaultPort: number, issues: Issue[]): AddressEntry[] | undefined {
  const entries: AddressEntry[] = [];
  for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(item);
    const url = parseRedisUrl(hasScheme ? item : `redis://${item}`);
    const port = url?.port ? Number(url.port) : defaultPort;
    if (!url || (url.pathname !== '' && url.pathname !== '/') || !(port >= 1 && port <= 65535)) {
      issues.push([variable, `${variable}: "${item.replace(/\/\/[^@/]*@/, '//<credentials>@').slice(0, 100)}" is not host:port (or redis://host:port); e.g. ${variable}=10.0.0.1:${defaultPort},10.0.0.2:${defaultPort}`]);
      return undefined;
    }
    entries.push({
      host: url.hostname,
      port,
      ...(hasScheme ? { scheme: url.protocol } : {}),
      ...(url.username ? { username: url.username } : {}),
      ...(url.password ? { password: url.password } : {}),
    });
  }
  if (entries.length === 0) {
    issues.push([variable, `${variable} names no host:port`]);
    return undefined;
  }
  return entries;
}
