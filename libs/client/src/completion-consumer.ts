import { COMPLETION_FIELD, replyStreamKey, replyTargetProblem, type RunCompletion } from '@podflow/protocol';
import { duplicateRedis, type RedisClient } from '@podflow/redis';
import { hostname } from 'node:os';

export interface CompletionConsumerOptions {
  /** The connection to read with (duplicated: a blocking read holds its own); stays yours to close. */
  redis: RedisClient;
  /** The coordinators' QUEUE_PREFIX (default `podflow`). */
  prefix?: string;
  /** The reply target your submissions name (`replyTo`). */
  replyTo: string;
  /** Called once per completion, at least once: acknowledged when it resolves, delivered again (here or to another consumer of the group) when it throws or this process dies. */
  handler: (completion: RunCompletion, entryId: string) => Promise<void>;
  /** Consumer group: consumers of one group share the completions; each group gets all of them. Default `podflow`. */
  group?: string;
  /** This consumer's name in the group; default host and pid. */
  consumer?: string;
  /** A completion another consumer took but has not acknowledged for this long is taken over (default 60 s). */
  claimIdleMs?: number;
  /** Completions read per round (default 100). */
  batch?: number;
  /** Called with what went wrong (an unreadable entry, a handler that threw, Redis errors); reading goes on. */
  onError?: (error: Error) => void;
}

/** How long one blocking read waits before the loop looks at stale entries and `close()` again. */
const BLOCK_MS = 2_000;

type StreamReply = Array<[string, Array<[string, string[]]>]> | null;

/**
 * Reads a reply target's completions with a Redis consumer group, at least once: an entry is
 * acknowledged (XACK) only after `handler` resolved, and entries a dead consumer held are taken
 * over after `claimIdleMs` (XAUTOCLAIM). A completion may so arrive twice, always with the same
 * `runId` (or `submissionId` for a rejected submission): make the handler idempotent on it.
 *
 * ```ts
 * const consumer = new CompletionConsumer({ redis, replyTo: 'billing', handler: async (c) => { ... } });
 * await consumer.start();
 * // ...
 * await consumer.close();
 * ```
 */
export class CompletionConsumer {
  private readonly reader: RedisClient;
  private readonly stream: string;
  private readonly group: string;
  private readonly consumer: string;
  private readonly claimIdleMs: number;
  private readonly batch: number;
  private running = false;
  private closed = false;
  private loop?: Promise<void>;

  constructor(private readonly options: CompletionConsumerOptions) {
    const problem = replyTargetProblem(options.replyTo, undefined);
    if (problem) throw new Error(problem);
    this.reader = duplicateRedis(options.redis);
    this.stream = replyStreamKey(options.prefix ?? 'podflow', options.replyTo);
    this.group = options.group ?? 'podflow';
    this.consumer = options.consumer ?? `${hostname()}-${process.pid}`;
    this.claimIdleMs = options.claimIdleMs ?? 60_000;
    this.batch = options.batch ?? 100;
  }

  /** Creates the group if needed (from the stream's start: nothing written before is missed) and starts reading. */
  async start(): Promise<void> {
    if (this.running) throw new Error('this CompletionConsumer is started already');
    if (this.closed) throw new Error('this CompletionConsumer was closed; make a new one');
    this.running = true;
    try {
      await this.ensureGroup();
    } catch (error) {
      this.running = false;
      throw error;
    }
    this.loop = this.run();
  }

  /** Stops after the round in progress (a completion being handled is finished and acknowledged). */
  async close(): Promise<void> {
    this.closed = true;
    this.running = false;
    await this.loop;
    this.reader.disconnect();
  }

  /**
   * The group, from the stream's start. Also after the stream expired (REPLY_RETENTION_SECONDS
   * without a completion) and took the group with it: the next completion creates a new stream.
   */
  private async ensureGroup(): Promise<void> {
    try {
      await this.options.redis.xgroup('CREATE', this.stream, this.group, '0', 'MKSTREAM');
    } catch (error) {
      if (!String((error as Error).message).includes('BUSYGROUP')) throw error;
    }
  }

  private async run(): Promise<void> {
    // Our own pending entries first (a restart under the same name picks up what it left), read
    // after `pendingFrom` so one that keeps failing is not read again and again; then new ones.
    let pendingFrom: string | undefined = '0';
    let lastClaim = 0;
    while (this.running) {
      try {
        if (Date.now() - lastClaim >= this.claimIdleMs / 2) {
          lastClaim = Date.now();
          await this.claimStale();
        }
        const reply = (await this.reader.xreadgroup('GROUP', this.group, this.consumer, 'COUNT', this.batch, 'BLOCK', pendingFrom ? 1 : BLOCK_MS, 'STREAMS', this.stream, pendingFrom ?? '>')) as StreamReply;
        const entries = reply?.[0]?.[1] ?? [];
        if (pendingFrom !== undefined) pendingFrom = entries.length > 0 ? entries[entries.length - 1]![0] : undefined;
        const failed = await this.handleAll(entries);
        // A handler that throws is given a moment before the next round, not a hot loop.
        if (failed > 0) await this.pause(1_000);
      } catch (error) {
        if (String((error as Error).message).includes('NOGROUP')) {
          await this.ensureGroup().catch((e: unknown) => this.report(e));
          pendingFrom = '0';
          continue;
        }
        this.report(error);
        await this.pause(500);
      }
    }
  }

  private async pause(ms: number): Promise<void> {
    if (this.running) await new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** Takes over entries other consumers held past claimIdleMs. */
  private async claimStale(): Promise<void> {
    let cursor = '0-0';
    do {
      const [next, entries] = (await this.options.redis.xautoclaim(this.stream, this.group, this.consumer, this.claimIdleMs, cursor, 'COUNT', this.batch)) as [string, Array<[string, string[] | null] | null>];
      await this.handleAll(entries.filter((e): e is [string, string[] | null] => e !== null));
      cursor = next;
    } while (cursor !== '0-0' && this.running);
  }

  /** Hands each entry to the handler and acknowledges it; returns how many the handler failed on. */
  private async handleAll(entries: Array<[string, string[] | null]>): Promise<number> {
    let failed = 0;
    for (const [id, fields] of entries) {
      // Fields are null for an entry trimmed away (past REPLY_RETENTION_SECONDS) while pending.
      const completion = fields ? parseCompletion(fields) : undefined;
      if (!completion) {
        this.report(new Error(`reply stream entry ${id} holds no readable completion (trimmed or corrupt); acknowledged and skipped`));
        await this.options.redis.xack(this.stream, this.group, id);
        continue;
      }
      try {
        await this.options.handler(completion, id);
      } catch (error) {
        // Left pending: read again after a pause, or taken over after claimIdleMs by another consumer.
        failed++;
        this.report(error);
        continue;
      }
      await this.options.redis.xack(this.stream, this.group, id);
    }
    return failed;
  }

  private report(error: unknown): void {
    this.options.onError?.(error instanceof Error ? error : new Error(String(error)));
  }
}

/** The completion a stream entry holds, or undefined when it holds none. */
export function parseCompletion(fields: readonly string[]): RunCompletion | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] !== COMPLETION_FIELD) continue;
    try {
      return JSON.parse(fields[i + 1]!) as RunCompletion;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
