import { QUEUE_NAMES, queuePrefix, replyStreamKey, replyTargetProblem, type RunCompletion, type SubmissionMessage } from '@podflow/protocol';
import { duplicateRedis, type RedisClient } from '@podflow/redis';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createHash, randomUUID } from 'node:crypto';
import { parseCompletion } from './completion-consumer';

export interface QueueSubmitterOptions {
  /** The coordinators' QUEUE_PREFIX (default `podflow`). */
  prefix?: string;
  /**
   * The reply target `submitAndWait` reads when a message names none. Default: one of this
   * submitter's own (`client.<uuid>`), which the coordinator lets expire after REPLY_RETENTION_SECONDS.
   */
  replyTo?: string;
}

/** How long one blocking read of the waiter waits before it checks for timeouts and `close()`. */
const BLOCK_MS = 1_000;
/** Entries `submitAndWait` searches back for a completion written before it started reading. */
const LOOK_BACK = 10_000;

type StreamReply = Array<[string, Array<[string, string[]]>]> | null;

/**
 * For services that submit runs straight onto the `submissions` queue instead of over HTTP.
 * - `submit(message)`: adds the submission; returns the job id. With `replyTo`, the run's
 *   completion arrives on that reply target (read it with `CompletionConsumer`, at least once).
 * - `submitAndWait(message)`: submits and resolves to the run's `RunCompletion` (its terminal
 *   status and outputs), or to a `rejected` completion when the submission never became a run.
 *
 * `redis` is a `redis://` URL, or a connection of your own: an ioredis `Redis` or `Cluster`
 * (`connectRedis` of @podflow/redis builds one from REDIS_URL, REDIS_CLUSTER_NODES or
 * REDIS_SENTINELS), with `maxRetriesPerRequest: null` as BullMQ requires. A connection you pass
 * stays yours to close.
 */
export class QueueSubmitter {
  private readonly connection: RedisClient;
  /** Whether `close()` disconnects the connection (we opened it from a URL). */
  private readonly ownsConnection: boolean;
  private readonly queue: Queue<SubmissionMessage, { runId: string }>;
  private readonly prefix: string;
  private readonly replyTo: string;
  private readonly waiters = new Map<string, CompletionWaiter>();
  private closed = false;

  /** `options` may be the prefix alone (the older signature). */
  constructor(redis: string | RedisClient, options: QueueSubmitterOptions | string = {}) {
    const opts = typeof options === 'string' ? { prefix: options } : options;
    this.ownsConnection = typeof redis === 'string';
    this.connection = typeof redis === 'string' ? new Redis(redis, { maxRetriesPerRequest: null }) : redis;
    this.prefix = opts.prefix ?? 'podflow';
    this.replyTo = opts.replyTo ?? `client.${randomUUID()}`;
    const problem = replyTargetProblem(this.replyTo, undefined);
    if (problem) throw new Error(problem);
    this.queue = new Queue(QUEUE_NAMES.submissions, { connection: this.connection, prefix: queuePrefix(this.prefix, QUEUE_NAMES.submissions) });
  }

  /** Adds a submission; the same idempotencyKey is stored once. Returns the job id. */
  async submit(message: SubmissionMessage): Promise<string> {
    const problem = replyTargetProblem(message.replyTo, message.correlationId);
    if (problem) throw new Error(problem);
    // One job per key and reply: a message sent twice is queued once, while another caller
    // naming the same key with its own reply target gets a job (and the same run's completion).
    const dedupe = message.idempotencyKey ? [message.tenantId, message.idempotencyKey, message.replyTo ?? '', message.correlationId ?? ''].join('\n') : undefined;
    const job = await this.queue.add('submit', message, {
      ...(dedupe ? { jobId: `idem-${createHash('sha256').update(dedupe).digest('base64url')}` } : {}),
      attempts: 5,
      backoff: { type: 'exponential', delay: 500 },
      removeOnComplete: { age: 24 * 3600 },
      removeOnFail: { age: 7 * 24 * 3600 },
    });
    return job.id!;
  }

  /**
   * Submits and waits for the run to end: its completion (status, outputs or their URL, error).
   * A submission refused by the coordinator resolves to `status: 'rejected'` with the reason.
   * Rejects only when nothing arrives within `timeoutMs` (default 10 minutes): the run may still
   * be going, and its completion stays on the reply target.
   */
  async submitAndWait(message: SubmissionMessage, options: { timeoutMs?: number } = {}): Promise<RunCompletion> {
    if (this.closed) throw new Error('this QueueSubmitter was closed; make a new one');
    const replyTo = message.replyTo ?? this.replyTo;
    const correlationId = message.correlationId ?? randomUUID();
    let waiter = this.waiters.get(replyTo);
    if (!waiter) {
      waiter = new CompletionWaiter(this.connection, replyStreamKey(this.prefix, replyTo));
      this.waiters.set(replyTo, waiter);
    }
    // Waiting starts before the submission exists, so even an instant completion is read.
    const completion = await waiter.wait(correlationId, options.timeoutMs ?? 600_000);
    // Settled below or by the caller; never an unhandled rejection while we submit.
    completion.done.catch(() => undefined);
    try {
      const jobId = await this.submit({ ...message, replyTo, correlationId });
      // The same key, target and correlation id as an earlier call: the same job, whose run may
      // have finished before we started reading. Its completion is then on the stream already.
      if (message.idempotencyKey !== undefined) await waiter.lookBack(correlationId, jobId);
    } catch (error) {
      waiter.cancel(correlationId, error as Error);
      throw error;
    }
    return completion.done;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.waiters.values()].map((w) => w.close()));
    await this.queue.close();
    if (this.ownsConnection) this.connection.disconnect();
  }
}

/**
 * Reads one reply stream (plain XREAD, no group: it takes nothing from a CompletionConsumer on the
 * same stream) while callers wait, and hands each completion to the caller with its correlation id.
 */
class CompletionWaiter {
  private readonly pending = new Map<string, { resolve: (c: RunCompletion) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private reader?: RedisClient;
  private loop?: Promise<void>;
  private running = false;
  /** Last stream id read: the stream's last entry when reading started (Redis's clock, not ours). */
  private cursor = '0-0';

  constructor(
    private readonly connection: RedisClient,
    private readonly stream: string,
  ) {}

  /** Registers a caller; once this resolves, any completion appended later reaches `done`. */
  async wait(correlationId: string, timeoutMs: number): Promise<{ done: Promise<RunCompletion> }> {
    if (this.pending.has(correlationId)) throw new Error(`a submission with correlation id "${correlationId}" is already waiting`);
    if (!this.running) {
      const [last] = (await this.connection.xrevrange(this.stream, '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
      if (!this.running) this.cursor = last?.[0] ?? '0-0';
    }
    const done = new Promise<RunCompletion>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(correlationId);
        reject(new Error(`no completion for correlation id "${correlationId}" within ${timeoutMs} ms; the run may still be going (its completion stays on the reply target)`));
      }, timeoutMs);
      this.pending.set(correlationId, { resolve, reject, timer });
    });
    if (!this.running) {
      this.running = true;
      this.loop = this.run();
    }
    return { done };
  }

  /** Stops waiting for `correlationId`, rejecting its caller with `error`. */
  cancel(correlationId: string, error: Error): void {
    const entry = this.pending.get(correlationId);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.pending.delete(correlationId);
    entry.reject(error);
  }

  /** Looks for a completion of `submissionId` written before reading started (the newest LOOK_BACK entries). */
  async lookBack(correlationId: string, submissionId: string): Promise<void> {
    let end = '+';
    for (let scanned = 0; scanned < LOOK_BACK && this.pending.has(correlationId); ) {
      const page = (await this.connection.xrevrange(this.stream, end, '-', 'COUNT', 500)) as Array<[string, string[]]>;
      for (const [, fields] of page) {
        const completion = parseCompletion(fields);
        if (completion?.correlationId === correlationId && completion.submissionId === submissionId) return this.settle(completion);
      }
      if (page.length < 500) return;
      scanned += page.length;
      end = `(${page[page.length - 1]![0]}`;
    }
  }

  private settle(completion: RunCompletion): void {
    const entry = completion.correlationId !== undefined ? this.pending.get(completion.correlationId) : undefined;
    if (!entry) return;
    clearTimeout(entry.timer);
    this.pending.delete(completion.correlationId!);
    entry.resolve(completion);
  }

  async close(): Promise<void> {
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      entry.reject(new Error(`the submitter was closed while correlation id "${id}" waited`));
    }
    this.pending.clear();
    await this.loop;
    this.reader?.disconnect();
  }

  private async run(): Promise<void> {
    this.reader ??= duplicateRedis(this.connection);
    while (this.pending.size > 0) {
      let reply: StreamReply;
      try {
        reply = (await this.reader.xread('COUNT', 500, 'BLOCK', BLOCK_MS, 'STREAMS', this.stream, this.cursor)) as StreamReply;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      for (const [id, fields] of reply?.[0]?.[1] ?? []) {
        this.cursor = id;
        const completion = fields ? parseCompletion(fields) : undefined;
        if (completion) this.settle(completion);
      }
    }
    // Set in the same turn as the check above: a caller registering next starts a new loop.
    this.running = false;
  }
}
