/**
 * Test support: coordinators' orchestration parts wired by hand on a real Redis (no HTTP, no
 * Nest), several per test, each with its own connections, as separate processes would be.
 */
import { QUEUE_NAMES, queuePrefix, type ExecJob, type ResultMessage } from '@podflow/protocol';
import { LocalDiskStore } from '@podflow/storage';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { loadCoordinatorConfig, type CoordinatorConfig } from '../../config';
import { Admission } from '../admission';
import { Definitions } from '../definitions';
import { Orchestrator } from '../orchestrator.service';
import { RunNotifier } from '../../notify/run-notifier';
import { WebhookDeliveries } from '../../webhooks/webhook-deliveries';
import { WebhookSecrets } from '../../webhooks/webhook-secrets';
import { OutboxExecutor } from '../outbox-executor';
import { OutboxSweeper } from '../outbox-sweeper';
import { GivenUpSweep } from '../given-up-sweep';
import { RunPayloads } from '../run-payloads';
import { RunStore } from '../run-store';
import { TenantDirectory } from '../../tenancy/tenant-directory';

/** Errors the coordinators logged, for a test to show when it fails (and to assert there are none). */
export const loggedErrors: string[] = [];

export const silentLogger = {
  debug() {},
  info() {},
  warn() {},
  error(fields: { err?: Error } | string, message?: string) {
    loggedErrors.push(typeof fields === 'string' ? fields : `${message}: ${fields.err?.stack ?? ''}`);
  },
  fatal() {},
  trace() {},
  child() {
    return silentLogger;
  },
} as unknown as Logger;

export interface TestCoordinator {
  config: CoordinatorConfig;
  redis: Redis;
  store: RunStore;
  orchestrator: Orchestrator;
  sweeper: OutboxSweeper;
  givenUp: GivenUpSweep;
  admission: Admission;
  execQueue: Queue<ExecJob>;
  close(): Promise<void>;
}

export function testConfig(redisUrl: string, prefix: string, storageDir: string, overrides: Record<string, string> = {}): CoordinatorConfig {
  return loadCoordinatorConfig({
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: prefix,
    PODFLOW_API_KEYS: 'k=t',
    FILE_URL_SECRET: 'x'.repeat(32),
    STORAGE_DIR: storageDir,
    ...overrides,
  });
}

export function startCoordinator(config: CoordinatorConfig, storageDir: string): TestCoordinator {
  const redis = new Redis(config.REDIS_URL!, { maxRetriesPerRequest: null });
  const execQueue = new Queue<ExecJob>(QUEUE_NAMES.exec, { connection: redis, prefix: queuePrefix(config.QUEUE_PREFIX, QUEUE_NAMES.exec) });
  const resultsQueue = new Queue<ResultMessage>(QUEUE_NAMES.results, { connection: redis, prefix: queuePrefix(config.QUEUE_PREFIX, QUEUE_NAMES.results) });
  const store = new RunStore(redis, config);
  const definitions = new Definitions(store);
  const directory = new TenantDirectory(redis, config, silentLogger);
  const admission = new Admission(execQueue, redis, config, store, directory);
  const objects = new LocalDiskStore({ root: storageDir, publicBaseUrl: 'http://localhost', secret: 'x'.repeat(32), defaultTtlSeconds: 60 });
  const webhooks = new WebhookDeliveries(new WebhookSecrets(redis, config), directory, redis, config, silentLogger);
  const notifier = new RunNotifier(store, webhooks, redis, objects, config, silentLogger);
  const executor = new OutboxExecutor(execQueue, resultsQueue, redis, config, admission, notifier);
  const payloads = new RunPayloads(objects, {
    inlineMaxBytes: config.OUTPUT_INLINE_MAX_BYTES,
    cacheMaxBytes: 1 << 20,
  });
  const orchestrator = new Orchestrator(store, definitions, executor, admission, payloads, silentLogger, config);
  const givenUp = new GivenUpSweep(orchestrator, execQueue, resultsQueue, redis, silentLogger);
  const sweeper = new OutboxSweeper(store, orchestrator, admission, givenUp, config, silentLogger);
  return {
    config,
    redis,
    store,
    orchestrator,
    sweeper,
    givenUp,
    admission,
    execQueue,
    async close() {
      await sweeper.onApplicationShutdown();
      await orchestrator.onApplicationShutdown();
      await Promise.allSettled([execQueue.close(), resultsQueue.close(), webhooks.onApplicationShutdown()]);
      redis.disconnect();
    },
  };
}
