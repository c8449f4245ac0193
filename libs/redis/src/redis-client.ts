import { Cluster, Redis } from 'ioredis';
import { redisConnectionPlan, type RedisConfig, type RedisConnectionPlan } from './redis-config';

/**
 * A podflow Redis connection: one Redis (direct or found through Sentinel) or a Redis Cluster.
 * Both run the same commands; a multi-key command or script must keep its keys in one slot
 * (podflow's keys carry hash tags for that), and `KEYS`, `SCAN` and `CLIENT LIST` see one node
 * of a cluster only (see `redisNodes`).
 */
export type RedisClient = Redis | Cluster;

export interface ConnectOptions {
  /** CLIENT SETNAME of the connection(s), so an operator can tell them apart; no spaces. */
  connectionName?: string;
  /**
   * ioredis auto-pipelining: commands issued in one event-loop turn leave in one socket write.
   * For connections with many concurrent callers (the coordinator's run store); never for a
   * connection handed to BullMQ, which was not written for it.
   */
  autoPipelining?: boolean;
}

/** A client for `config` (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS) or a plan built from it. */
export function connectRedis(config: RedisConfig | RedisConnectionPlan, options: ConnectOptions = {}): RedisClient {
  const plan = 'mode' in config ? config : redisConnectionPlan(config);
  const name = options.connectionName ? { connectionName: options.connectionName } : {};
  const pipelining = options.autoPipelining ? { enableAutoPipelining: true } : {};
  switch (plan.mode) {
    case 'standalone':
      return new Redis(plan.url, { ...plan.options, ...name, ...pipelining });
    case 'sentinel':
      return new Redis({ ...plan.options, ...name, ...pipelining });
    case 'cluster':
      return new Cluster(plan.nodes, { ...plan.options, ...pipelining, redisOptions: { ...plan.options.redisOptions, ...name } });
  }
}

export function isCluster(client: RedisClient): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

/** A new connection like `client` (same target, credentials and TLS), e.g. for a subscriber. */
export function duplicateRedis(client: RedisClient, options: ConnectOptions = {}): RedisClient {
  const name = options.connectionName ? { connectionName: options.connectionName } : {};
  if (isCluster(client)) return client.duplicate([], { redisOptions: { ...client.options.redisOptions, ...name } });
  return client.duplicate(name);
}

/**
 * The nodes that hold data: a cluster's masters (as the client knows them now), else the client
 * itself. For what one node answers for itself alone: SCAN, KEYS, CLIENT LIST, FLUSHDB.
 */
export function redisNodes(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes('master') : [client];
}
