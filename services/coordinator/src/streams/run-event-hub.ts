import { Inject, Injectable, Optional, type OnApplicationShutdown } from '@nestjs/common';
import { isTerminalRunPhase, type RunEventMessage } from '@podflow/protocol';
import { randomUUID } from 'node:crypto';
import { ReplyError, type Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RunStore, parseStoredEvent, type StoredEvent } from '../orchestration/run-store';
import { LOGGER, REDIS } from '../tokens';
import { isStreamId } from './stream-ids';

/** Entries read per stream and round. */
const BATCH = 500;
/** Pause after a failed read (Redis restarting) before the next one. */
const RETRY_MS = 1_000;
/** Entries kept in the wake stream; only the newest matters. */
const WAKE_MAXLEN = 16;
/** The wake stream outlives its coordinator by this much at most. */
const WAKE_TTL_MS = 3_600_000;

/** Tuning of the hub; the defaults suit production. */
export interface RunEventHubOptions {
  /** How long one blocking read waits; a new stream wakes it at once, so this only bounds an idle loop. */
  blockMs: number;
}

export const RUN_EVENT_HUB_OPTIONS = Symbol('RUN_EVENT_HUB_OPTIONS');
const DEFAULT_OPTIONS: RunEventHubOptions = { blockMs: 5_000 };

/** Receives a run's events, in stream order, from the hub's reader. */
export interface EventSubscriber {
  deliver(event: StoredEvent): void;
  /** The stream was dropped because Redis refuses to read it; no event will follow. */
  end(reason: string): void;
}

interface TrackedStream {
  key: string;
  /** The last entry the hub has read (and handed to every subscriber present then); always an id Redis gave. */
  cursor: string;
  subscribers: Set<EventSubscriber>;
}

type XreadReply = Array<[string, Array<[string, string[]]>]> | null;

/** CLIENT SETNAME of the hub's connection: `podflow-run-events:<prefix>`, braces and all (no spaces allowed). */
export function runEventsConnectionName(prefix: string): string {
  return `podflow-run-events:${prefix.replace(/\s+/g, '_')}`;
}

export function isTerminalEvent(event: RunEventMessage): boolean {
  return event.type === 'run' && isTerminalRunPhase(event.status);
}

/**
 * The one Redis reader of this coordinator process for run event streams. Each SSE client and
 * `?wait=true` request used to block a Redis connection of its own, so ten thousand clients
 * exhausted Redis; now a single connection runs `XREAD BLOCK` over every stream someone follows,
 * each from the hub's own cursor, and hands each entry to that stream's subscribers.
 *
 * Guarantees, per run: entries reach a subscriber in stream order, each once, none missed.
 * `subscribe` returns the stream's cursor at that moment; the hub delivers exactly the entries
 * after it, and entries up to it are the caller's to read with XRANGE (RunEventsService does).
 * Cursors are only ever ids Redis returned (the stream's last entry when tracking starts, then
 * each entry read), never a client's Last-Event-ID: the read is shared, and one bad or future
 * cursor would stall or skip every stream in it. Should Redis still refuse the shared read, the
 * streams it refuses are found one by one and dropped (their subscribers end), so one bad stream
 * never stops the others; an entry that is not an event is skipped.
 *
 * A newly followed stream wakes the blocked read through this process's wake stream, which every
 * read includes: unlike CLIENT UNBLOCK, that needs no client id (which changes when the
 * connection is re-established) and cannot arrive before the read it is meant to end.
 */
@Injectable()
export class RunEventHub implements OnApplicationShutdown {
  private readonly streams = new Map<string, TrackedStream>();
  private readonly options: RunEventHubOptions;
  private readonly wakeKey: string;
  private wakeCursor = '0-0';
  private reader?: Redis;
  /** The read loop while it runs; shutdown waits for it. */
  private loop?: Promise<void>;
  private reading = false;
  private closed = false;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly store: RunStore,
    @Inject(LOGGER) private readonly logger: Logger,
    @Optional() @Inject(RUN_EVENT_HUB_OPTIONS) options?: Partial<RunEventHubOptions>,
  ) {
    this.options = { ...DEFAULT_OPTIONS, ...options };
    this.wakeKey = store.keys.eventsWake(randomUUID());
  }

  /**
   * Starts handing `runId`'s entries after the returned cursor to `subscriber`. A stream nobody
   * follows yet is tracked from `lastReadId`, which must be an id the caller read from the
   * stream itself (its last entry), so its first subscriber needs no range read.
   */
  subscribe(runId: string, lastReadId: string, subscriber: EventSubscriber): string {
    let tracked = this.streams.get(runId);
    if (!tracked) {
      if (!isStreamId(lastReadId)) throw new Error(`run ${runId}: the hub tracks streams from an entry id read from Redis, not "${lastReadId.slice(0, 64)}"`);
      tracked = { key: this.store.keys.events(runId), cursor: lastReadId, subscribers: new Set() };
      this.streams.set(runId, tracked);
      this.wake();
    }
    tracked.subscribers.add(subscriber);
    this.startReading();
    return tracked.cursor;
  }

  unsubscribe(runId: string, subscriber: EventSubscriber): void {
    const tracked = this.streams.get(runId);
    if (!tracked) return;
    tracked.subscribers.delete(subscriber);
    if (tracked.subscribers.size === 0) this.streams.delete(runId);
  }

  /** Streams currently read (for tests and metrics). */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Stops reading: the blocked read is cut off and the loop has ended when this resolves. */
  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    this.reader?.disconnect();
    await this.loop;
  }

  private startReading(): void {
    if (this.reading || this.closed) return;
    this.reading = true;
    this.loop = this.read()
      .catch((error: unknown) => {
        if (!this.closed) this.logger.error({ err: error }, 'run event reader stopped; it restarts with the next subscriber');
      })
      .finally(() => {
        this.reading = false;
        // A subscriber that arrived while the loop was finishing must not wait for nobody.
        if (this.streams.size > 0 && !this.closed) this.startReading();
      });
  }

  private async read(): Promise<void> {
    const reader = this.connectReader();
    while (!this.closed && this.streams.size > 0) {
      const round = [...this.streams.entries()];
      const keys = [this.wakeKey, ...round.map(([, t]) => t.key)];
      const cursors = [this.wakeCursor, ...round.map(([, t]) => t.cursor)];
      let reply: XreadReply;
      try {
        reply = await xread(reader, ['COUNT', BATCH, 'BLOCK', this.options.blockMs, 'STREAMS', ...keys, ...cursors]);
      } catch (error) {
        if (this.closed) return;
        // Redis answered, and refused the read: find the streams it refuses and drop them alone.
        if (error instanceof ReplyError && (await this.dropUnreadable(round)) > 0) continue;
        this.logger.warn({ err: error }, 'reading run event streams failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        continue;
      }
      const byKey = new Map(round.map(([runId, tracked]) => [tracked.key, { runId, tracked }]));
      for (const [key, entries] of reply ?? []) {
        if (key === this.wakeKey) {
          this.wakeCursor = entries.at(-1)?.[0] ?? this.wakeCursor;
          continue;
        }
        const issued = byKey.get(key);
        if (!issued || this.streams.get(issued.runId) !== issued.tracked) continue;
        this.dispatch(issued.runId, issued.tracked, entries);
      }
    }
  }

  private dispatch(runId: string, tracked: TrackedStream, entries: Array<[string, string[]]>): void {
    for (const [id, fields] of entries) {
      tracked.cursor = id;
      const event = parseStoredEvent(fields);
      if (!event) {
        this.logger.warn({ runId, entryId: id }, 'run event stream entry is not an event; skipped');
        continue;
      }
      for (const subscriber of [...tracked.subscribers]) {
        try {
          subscriber.deliver({ id, event });
        } catch (error) {
          this.logger.error({ err: error, runId }, 'run event subscriber failed');
        }
      }
      // Nothing follows a terminal event; subscribers end on it and leave.
      if (isTerminalEvent(event) && this.streams.get(runId) === tracked) this.streams.delete(runId);
    }
  }

  /** Reads each stream of a refused round on its own (without blocking); drops those Redis refuses. */
  private async dropUnreadable(round: Array<[string, TrackedStream]>): Promise<number> {
    let dropped = 0;
    for (const [runId, tracked] of round) {
      try {
        await xread(this.redis, ['COUNT', 1, 'STREAMS', tracked.key, tracked.cursor]);
      } catch (error) {
        if (!(error instanceof ReplyError)) throw error;
        dropped++;
        if (this.streams.get(runId) === tracked) this.streams.delete(runId);
        this.logger.error({ err: error, runId, key: tracked.key, cursor: tracked.cursor }, 'run event stream cannot be read; its followers are ended');
        for (const subscriber of tracked.subscribers) subscriber.end(`the event stream of run ${runId} cannot be read (${(error as Error).message}); poll GET /v1/runs/${runId}`);
      }
    }
    return dropped;
  }

  private connectReader(): Redis {
    if (this.reader) return this.reader;
    // Named, so an operator (and the security suite) can see there is one per coordinator.
    const reader = this.redis.duplicate({ connectionName: runEventsConnectionName(this.store.keys.prefix) });
    reader.on('error', (error: Error) => this.logger.debug({ err: error }, 'run event reader connection error'));
    this.reader = reader;
    return reader;
  }

  /** Ends the current blocking read early so the next one includes a newly followed stream. */
  private wake(): void {
    if (!this.reading) return;
    this.redis
      .multi()
      .xadd(this.wakeKey, 'MAXLEN', '~', WAKE_MAXLEN, '*', 'wake', '1')
      .pexpire(this.wakeKey, WAKE_TTL_MS)
      .exec()
      .catch((error: unknown) => this.logger.debug({ err: error }, 'waking the run event reader failed; the new stream is read within one block'));
  }
}

function xread(connection: Redis, args: Array<string | number>): Promise<XreadReply> {
  return (connection.xread as (...a: Array<string | number>) => Promise<XreadReply>)(...args);
}
