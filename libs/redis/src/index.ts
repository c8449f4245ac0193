/**
 * @podflow/redis: how every podflow process reaches Redis. One Redis (REDIS_URL), a Redis
 * Cluster (REDIS_CLUSTER_NODES) or Redis Sentinel (REDIS_SENTINELS + REDIS_SENTINEL_NAME), with
 * REDIS_USERNAME, REDIS_PASSWORD, REDIS_TLS, and the QUEUE_PREFIX rule (no braces).
 *
 * ```ts
 * import { checkRedisConfig, connectRedis, redisConfigShape, type RedisClient } from '@podflow/redis';
 * const schema = z.object({ ...redisConfigShape }).superRefine(checkRedisConfig);
 * const redis: RedisClient = connectRedis(schema.parse(process.env)); // Redis | Cluster
 * ```
 *
 * Kept out of @podflow/protocol, whose sources are bundled into the in-sandbox Node runner: that
 * bundle must not carry a Redis client.
 */
export { checkRedisConfig, redisConfigShape, redisConnectionPlan } from './redis-config';
export type { RedisAddress, RedisConfig, RedisConnectionPlan } from './redis-config';
export { connectRedis, duplicateRedis, isCluster, redisNodes } from './redis-client';
export type { ConnectOptions, RedisClient } from './redis-client';
export { LuaScript } from './lua-script';
export { startShutdownWatchdog } from './shutdown-watchdog';
export type { ShutdownWatchdogOptions } from './shutdown-watchdog';
