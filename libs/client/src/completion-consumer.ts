import { COMPLETION_FIELD, replyStreamKey, type RunCompletion } from '@podflow/protocol';
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
  private running = false;
  private loop?: Promise<void>;

  constructor(private readonly options: CompletionConsumerOptions) {
    this.reader = duplicateRedis(options.redis);
    this.stream = replyStreamKey(options.prefix ?? 'podflow', options.replyTo);
    this.group = options.group ?? 'podflow';
    this.consumer = options.consumer ?? `${hostname()}-${process.pid}`;
  }

  /** Creates the group if needed (from the stream's start: nothing written before is missed) and starts reading. */
  async start(): Promise<void> {
    try {
      await this.options.redis.xgroup('CREATE', this.stream, this.group, '0', 'MKSTREAM');
    } catch (error) {
      if (!String((error as Error).message).includes('BUSYGROUP')) throw error;
    }
    this.running = true;
    this.loop = this.run();
  }

  /** Stops after the round in progress (a completion being handled is finished and acknowledged). */
  async close(): Promise<void> {
    this.running = false;
    await this.loop;
    this.reader.disconnect();
  }

  private async run(): Promise<void> {
    // Our own pending entries first: a restart under the same name picks up what it left.
    let pending = true;
    let lastClaim = 0;
    while (this.running) {
      try {
        if (Date.now() - lastClaim >= (this.options.claimIdleMs ?? 60_000) / 2) {
          lastClaim = Date.now();
          await this.claimStale();
        }
        const reply = (await this.reader.xreadgroup('GROUP', this.group, this.consumer, 'COUNT', this.options.batch ?? 100, 'BLOCK', pending ? 1 : BLOCK_MS, 'STREAMS', this.stream, pending ? '0' : '>')) as StreamReply;
        const entries = reply?.[0]?.[1] ?? [];
        if (pending && entries.length === 0) pending = false;
        await this.handleAll(entries);
      } catch (error) {
        this.report(error);
        if (this.running) await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Takes over entries other consumers held past claimIdleMs. */
  private async claimStale(): Promise<void> {
    let cursor = '0-0';
    do {
      const [next, entries] = (await this.options.redis.xautoclaim(this.stream, this.group, this.consumer, this.options.claimIdleMs ?? 60_000, cursor, 'COUNT', this.options.batch ?? 100)) as [string, Array<[string, string[]] | null>];
      await this.handleAll(entries.filter((e): e is [string, string[]] => e !== null));
      cursor = next;
    } while (cursor !== '0-0' && this.running);
  }

  private async handleAll(entries: Array<[string, string[]]>): Promise<void> {
    for (const [id, fields] of entries) {
      const completion = parseCompletion(fields);
      if (!completion) {
        this.report(new Error(`reply stream entry ${id} holds no readable completion; acknowledged and skipped`));
        await this.options.redis.xack(this.stream, this.group, id);
        continue;
      }
      try {
        await this.options.handler(completion, id);
      } catch (error) {
        // Left pending: taken over after claimIdleMs, by this consumer or another.
        this.report(error);
        continue;
      }
      await this.options.redis.xack(this.stream, this.group, id);
    }
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
