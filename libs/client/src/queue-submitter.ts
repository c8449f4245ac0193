import { QUEUE_NAMES, type SubmissionMessage } from '@podflow/protocol';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';

/**
 * For services that submit runs straight onto the `submissions` queue instead of over HTTP.
 * The coordinator answers each job with `{ runId }`.
 */
export class QueueSubmitter {
  private readonly connection: Redis;
  private readonly queue: Queue<SubmissionMessage, { runId: string }>;

  constructor(redisUrl: string, prefix: string) {
    this.connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    this.queue = new Queue(QUEUE_NAMES.submissions, { connection: this.connection, prefix });
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
    const connection = this.connection.duplicate();
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
    this.connection.disconnect();
  }
}
