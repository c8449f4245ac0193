import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { isTerminalRunPhase, type RunEventMessage } from '@podflow/protocol';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RunStore, type StoredEvent } from '../orchestration/run-store';
import { LOGGER, REDIS } from '../tokens';

/** How long one blocking read waits; new streams interrupt it (CLIENT UNBLOCK), this only bounds a missed wake-up. */
const BLOCK_MS = 5_000;
/** Entries read per stream and round. */
const BATCH = 500;
/** Pause after a failed read (Redis restarting) before the next one. */
const RETRY_MS = 1_000;

/** Receives a run's events, in stream order, from the hub's reader. */
export interface EventSubscriber {
  deliver(event: StoredEvent): void;
}

interface TrackedStream {
  key: string;
  /** The last entry the hub has read (and handed to every subscriber present then). */
  cursor: string;
  subscribers: Set<EventSubscriber>;
}

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
 * after it, and entries up to it are the caller's to read with XRANGE (RunEventsService does),
 * so resuming from an old Last-Event-ID costs one range read and no second reader. A reply that
 * arrives for a stream that was dropped and tracked again meanwhile is discarded (the new
 * tracking reads from its own cursor), so cursors never skip entries.
 */
@Injectable()
export class RunEventHub implements OnApplicationShutdown {
  private readonly streams = new Map<string, TrackedStream>();
  private reader?: Redis;
  private readerId?: number;
  private reading = false;
  private closed = false;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly store: RunStore,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * Starts handing `runId`'s entries after the returned cursor to `subscriber`. A stream nobody
   * followed yet starts at `after`, so its first subscriber needs no range read.
   */
  subscribe(runId: string, after: string, subscriber: EventSubscriber): string {
    let tracked = this.streams.get(runId);
    if (!tracked) {
      tracked = { key: this.store.keys.events(runId), cursor: after, subscribers: new Set() };
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

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    this.reader?.disconnect();
  }

  private startReading(): void {
    if (this.reading || this.closed) return;
    this.reading = true;
    void this.read().finally(() => {
      this.reading = false;
      // A subscriber that arrived while the loop was finishing must not wait for nobody.
      if (this.streams.size > 0 && !this.closed) this.startReading();
    });
  }

  private async read(): Promise<void> {
    const reader = await this.connectReader();
    while (!this.closed && this.streams.size > 0) {
      const round = [...this.streams.entries()];
      const args: Array<string | number> = ['COUNT', BATCH, 'BLOCK', BLOCK_MS, 'STREAMS', ...round.map(([, t]) => t.key), ...round.map(([, t]) => t.cursor)];
      let reply: Array<[string, Array<[string, string[]]>]> | null;
      try {
        reply = (await (reader.xread as (...a: Array<string | number>) => Promise<unknown>)(...args)) as typeof reply;
      } catch (error) {
        if (this.closed) return;
        this.logger.warn({ err: error }, 'reading run event streams failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        continue;
      }
      const byKey = new Map(round.map(([runId, tracked]) => [tracked.key, { runId, tracked }]));
      for (const [key, entries] of reply ?? []) {
        const issued = byKey.get(key);
        if (!issued || this.streams.get(issued.runId) !== issued.tracked) continue;
        this.dispatch(issued.runId, issued.tracked, entries);
      }
    }
  }

  private dispatch(runId: string, tracked: TrackedStream, entries: Array<[string, string[]]>): void {
    for (const [id, fields] of entries) {
      const event: StoredEvent = { id, event: JSON.parse(fields[1] ?? '{}') as RunEventMessage };
      tracked.cursor = id;
      for (const subscriber of [...tracked.subscribers]) subscriber.deliver(event);
      // Nothing follows a terminal event; subscribers end on it and leave.
      if (isTerminalEvent(event.event) && this.streams.get(runId) === tracked) this.streams.delete(runId);
    }
  }

  private async connectReader(): Promise<Redis> {
    if (this.reader) return this.reader;
    // Named, so an operator (and the security suite) can see there is one per coordinator.
    const reader = this.redis.duplicate({ connectionName: runEventsConnectionName(this.store.keys.prefix) });
    reader.on('error', (error: Error) => this.logger.debug({ err: error }, 'run event reader connection error'));
    // The id changes with every reconnection; it is what CLIENT UNBLOCK needs.
    reader.on('ready', () => {
      reader.client('ID').then((id) => (this.readerId = Number(id)), () => (this.readerId = undefined));
    });
    this.reader = reader;
    this.readerId = Number(await reader.client('ID'));
    return reader;
  }

  /** Ends the current blocking read early so the next one includes a newly followed stream. */
  private wake(): void {
    if (this.readerId === undefined || !this.reading) return;
    this.redis.client('UNBLOCK', this.readerId).catch(() => {
      // Without the CLIENT command (restricted ACLs) the new stream is read after BLOCK_MS at most.
    });
  }
}
