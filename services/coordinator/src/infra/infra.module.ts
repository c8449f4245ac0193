import { Global, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { QUEUE_NAMES, queuePrefix } from '@podflow/protocol';
import { connectRedis, type RedisClient } from '@podflow/redis';
import { createObjectStore } from '@podflow/storage';
import { Queue } from 'bullmq';
import pino from 'pino';
import type { CoordinatorConfig } from '../config';
import { CONFIG, EXEC_QUEUE, LOGGER, OBJECT_STORE, REDIS, RESULTS_QUEUE, STATE_REDIS } from '../tokens';

/** Connections and clients shared by every module: config, logger, Redis, queues, object store. */
@Global()
@Module({})
export class InfraModule implements OnApplicationShutdown {
  static forRoot(config: CoordinatorConfig) {
    const logger = pino({ name: 'podflow-coordinator', level: config.LOG_LEVEL });
    return {
      module: InfraModule,
      providers: [
        { provide: CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        // One Redis, Sentinel or Cluster as configured; maxRetriesPerRequest: null, as BullMQ requires.
        { provide: REDIS, useFactory: (): RedisClient => connectRedis(config) },
        { provide: STATE_REDIS, useFactory: (): RedisClient => connectRedis(config, { autoPipelining: true }) },
        {
          provide: EXEC_QUEUE,
          inject: [REDIS],
          useFactory: (redis: RedisClient) => new Queue(QUEUE_NAMES.exec, { connection: redis, prefix: queuePrefix(config.QUEUE_PREFIX, QUEUE_NAMES.exec) }),
        },
        {
          provide: RESULTS_QUEUE,
          inject: [REDIS],
          useFactory: (redis: RedisClient) => new Queue(QUEUE_NAMES.results, { connection: redis, prefix: queuePrefix(config.QUEUE_PREFIX, QUEUE_NAMES.results) }),
        },
        {
          provide: OBJECT_STORE,
          // LocalDiskStore or S3Store, as STORAGE says.
          useFactory: () => createObjectStore(config),
        },
      ],
      exports: [CONFIG, LOGGER, REDIS, STATE_REDIS, EXEC_QUEUE, RESULTS_QUEUE, OBJECT_STORE],
    };
  }

  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(STATE_REDIS) private readonly stateRedis: RedisClient,
    @Inject(EXEC_QUEUE) private readonly execQueue: Queue,
    @Inject(RESULTS_QUEUE) private readonly resultsQueue: Queue,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([this.execQueue.close(), this.resultsQueue.close()]);
    this.redis.disconnect();
    this.stateRedis.disconnect();
  }
}
