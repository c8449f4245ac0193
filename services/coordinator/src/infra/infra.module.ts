import { Global, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { QUEUE_NAMES } from '@podflow/protocol';
import { createObjectStore } from '@podflow/storage';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pino from 'pino';
import type { CoordinatorConfig } from '../config';
import { CONFIG, EXEC_QUEUE, LOGGER, OBJECT_STORE, REDIS, RESULTS_QUEUE } from '../tokens';

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
        // maxRetriesPerRequest: null is what BullMQ requires of connections it blocks on.
        { provide: REDIS, useFactory: () => new Redis(config.REDIS_URL, { maxRetriesPerRequest: null }) },
        {
          provide: EXEC_QUEUE,
          inject: [REDIS],
          useFactory: (redis: Redis) => new Queue(QUEUE_NAMES.exec, { connection: redis, prefix: config.QUEUE_PREFIX }),
        },
        {
          provide: RESULTS_QUEUE,
          inject: [REDIS],
          useFactory: (redis: Redis) => new Queue(QUEUE_NAMES.results, { connection: redis, prefix: config.QUEUE_PREFIX }),
        },
        {
          provide: OBJECT_STORE,
          // LocalDiskStore or S3Store, as STORAGE says.
          useFactory: () => createObjectStore(config),
        },
      ],
      exports: [CONFIG, LOGGER, REDIS, EXEC_QUEUE, RESULTS_QUEUE, OBJECT_STORE],
    };
  }

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(EXEC_QUEUE) private readonly execQueue: Queue,
    @Inject(RESULTS_QUEUE) private readonly resultsQueue: Queue,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([this.execQueue.close(), this.resultsQueue.close()]);
    this.redis.disconnect();
  }
}
