import { QUEUE_NAMES, queuePrefix, type SubmissionMessage } from '@podflow/protocol';
import { duplicateRedis, type RedisClient } from '@podflow/redis';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';

/**
 * For services that submit runs straight onto the `submissions` queue instead of over HTTP.
 * The coordinator answers each job with `{ runId }`.
 *
 * `redis` is a `redis://` URL, or a connection of your own: an ioredis `Redis` or `Cluster`
 * (`connectRedis` of @podflow/redis builds one from REDIS_URL, REDIS_CLUSTER_NODES or
 * REDIS_SENTINELS), with `maxRetriesPerRequest: null` as BullMQ requires. A connection you pass
 * stays yours to close. `prefix` is the coordinators' QUEUE_PREFIX (default `podflow`).
 */
export class QueueSubmitter {
  private readonly connection: RedisClient;
  /** Whether `close()` disconnects the connection (we opened it from a URL). */
  private readonly ownsConnection: boolean;
  private readonly queue: Queue<SubmissionMessage, { runId: string }>;

  constructor(redis: string | RedisClient, prefix: string) {
    this.ownsConnection = typeof redis === 'string';
    this.connection = typeof redis === 'string' ? new Redis(redis, { maxRetriesPerRequest: null }) : redis;
    this.queue = new Queue(QUEUE_NAMES.submissions, { connection: this.connection, prefix: queuePrefix(prefix, QUEUE_NAMES.submissions) });
  }

  /** Adds a submission; the same idempotencyKey is stored once. Returns the job id. */
  async submit(message: SubmissionMessage): Promise<string> {
    const job = await this.queue.add('submit', message, {
      ...(message.idempotencyKey ? { jobId: `idem-${Buffer.from(`${message.tenantId}\n${message.idempotencyKey}`).toString('base64url')}` } : {}),
      attempts: 5,
      backoff: { type: 'exponential', delay: 500 },
      removeOnComplete: { age: 24 * 3600 },
      removeOnFail: { age: 7 * 24 * 3600 },
    });
    return job.id!;
  }

  /** Submits and waits for the coordinator to accept it; resolves to the run id. */
  async submitAndWait(message: SubmissionMessage, timeoutMs = 30_000): Promise<string> {
    // BullMQ does not close a connection it was handed: this one is ours to disconnect.
    const connection = duplicateRedis(this.connection);
    const events = new QueueEvents(QUEUE_NAMES.submissions, { connection, prefix: this.queue.opts.prefix });
    try {
      await events.waitUntilReady();
      const jobId = await this.submit(message);
      const job = await this.queue.getJob(jobId);
      const result = await job!.waitUntilFinished(events, timeoutMs);
      return result.runId;
    } finally {
      await events.close();
      connection.disconnect();
    }
  }

  async close(): Promise<void> {
    await this.queue.close();
    if (this.ownsConnection) this.connection.disconnect();
  }
}
