import { Inject, Injectable, Optional, type OnApplicationShutdown } from '@nestjs/common';
import { isTerminalRunPhase, runEventsChannel, type RunEventMessage } from '@podflow/protocol';
import { duplicateRedis, type RedisClient } from '@podflow/redis';
import { ReplyError } from 'ioredis';
import type { Logger } from 'pino';
import { RunStore, parseStoredEvent, type StoredEvent } from '../orchestration/run-store';
import { LOGGER, REDIS } from '../tokens';
import { compareStreamIds, isStreamId } from './stream-ids';

/** Entries read per XRANGE. */
const BATCH = 500;
/** How long shutdown waits for reads under way (they end by themselves; Redis may be gone). */
const SHUTDOWN_WAIT_MS = 5_000;
/**
 * Replies that say Redis (or the cluster) is busy or not ready, not that the stream is bad: the
 * read is tried again with the next message or sweep instead of ending the stream's followers.
 */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|NOAUTH|NOPERM|READONLY|MOVED|ASK)\b/;

/** Tuning of the hub; the defaults suit production. */
export interface RunEventHubOptions {
  /**
   * How often every followed stream is read even without a message. Pub/sub delivers at most
   * once: a message published while the subscriber reconnects (a cluster moves it to another
   * node) is lost, so this bounds how late an event can be then. Normally a message reads it at once.
   */
  sweepMs: number;
}

export const RUN_EVENT_HUB_OPTIONS = Symbol('RUN_EVENT_HUB_OPTIONS');
const DEFAULT_OPTIONS: RunEventHubOptions = { sweepMs: 5_000 };

/** Receives a run's events, in stream order, from the hub. */
export interface EventSubscriber {
  deliver(event: StoredEvent): void;
  /** The stream was dropped because Redis refuses to read it; no event will follow. */
  end(reason: string): void;
}

interface TrackedStream {
  runId: string;
  key: string;
  channel: string;
  /** The last entry the hub has read (and handed to every subscriber present then); always an id Redis gave. */
  cursor: string;
  subscribers: Set<EventSubscriber>;
  /** The read of this stream under way; at most one at a time, so entries go out in order. */
  reading?: Promise<void>;
  /** A read was asked for while one was under way: read once more after it. */
  again: boolean;
}

/** CLIENT SETNAME of the hub's subscriber connection: `podflow-run-events:<prefix>` (no spaces allowed). */
export function runEventsConnectionName(prefix: string): string {
  return `podflow-run-events:${prefix.replace(/\s+/g, '_')}`;
}

export function isTerminalEvent(event: RunEventMessage): boolean {
  return event.type === 'run' && isTerminalRunPhase(event.status);
}

/**
 * Follows run event streams for this coordinator process: SSE clients and `?wait=true` requests
 * subscribe here, and however many there are, the hub holds one Redis connection of its own (a
 * pub/sub subscriber) and reads each followed stream once for all of them.
 *
 * The run store's scripts PUBLISH the id of the last entry they wrote on the run's channel
 * (`runEventsChannel`) right after their XADDs. The hub subscribes to the channels of the runs it
 * has subscribers for, and on each message reads that stream with XRANGE from its own cursor; it
 * reads it once right after subscribing too, so an entry written before the subscription took
 * effect is not missed. Each stream is read on its own, so this works the same on one Redis and on
 * a Redis Cluster, where the streams of different runs live in different slots (the single
 * multi-stream XREAD this replaces failed there with CROSSSLOT). The message is only a hint: the
 * entries, and every cursor, come from XRANGE. Pub/sub loses messages while the subscriber
 * reconnects, so the hub re-reads every stream when its connection is ready again and every
 * `sweepMs` (a cluster's subscriber can move to another node without telling).
 *
 * Guarantees, per run: entries reach a subscriber in stream order, each once, none missed.
 * `subscribe` returns the stream's cursor at that moment; the hub delivers exactly the entries
 * after it, and entries up to it are the caller's to read with XRANGE (RunEventsService does).
 * Cursors are only ever ids Redis returned (the stream's last entry when tracking starts, then
 * each entry read), never a client's Last-Event-ID nor a message's. A stream Redis refuses to
 * read (wrong type) is dropped and its subscribers end, alone; an entry that is not an event is
 * skipped.
 */
@Injectable()
export class RunEventHub implements OnApplicationShutdown {
  private readonly streams = new Map<string, TrackedStream>();
  private readonly byChannel = new Map<string, TrackedStream>();
  private readonly options: RunEventHubOptions;
  private subscriber?: RedisClient;
  private sweepTimer?: NodeJS.Timeout;
  /** Reads and subscriptions under way; shutdown waits for them. */
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;

  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    private readonly store: RunStore,
    @Inject(LOGGER) private readonly logger: Logger,
    @Optional() @Inject(RUN_EVENT_HUB_OPTIONS) options?: Partial<RunEventHubOptions>,
  ) {
    this.options = { ...DEFAULT_OPTIONS, ...options };
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
      tracked = {
        runId,
        key: this.store.keys.events(runId),
        channel: runEventsChannel(this.store.keys.prefix, runId),
        cursor: lastReadId,
        subscribers: new Set(),
        again: false,
      };
      this.streams.set(runId, tracked);
      this.byChannel.set(tracked.channel, tracked);
      this.listen(tracked);
    }
    tracked.subscribers.add(subscriber);
    return tracked.cursor;
  }

  unsubscribe(runId: string, subscriber: EventSubscriber): void {
    const tracked = this.streams.get(runId);
    if (!tracked) return;
    tracked.subscribers.delete(subscriber);
    if (tracked.subscribers.size === 0) this.forget(tracked);
  }

  /** Streams currently followed (for tests and metrics). */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Stops following: no read starts after this, and the ones under way have ended when it resolves. */
  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    this.stopSweeping();
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_WAIT_MS)));
    await Promise.race([Promise.allSettled([...this.pending]), waited]);
    clearTimeout(timer);
    this.subscriber?.disconnect();
  }

  /** Subscribes to the stream's channel, then reads what was written before the subscription took effect. */
  private listen(tracked: TrackedStream): void {
    if (this.closed) return;
    this.startSweeping();
    const subscribed = this.connectSubscriber()
      .subscribe(tracked.channel)
      .catch((error: unknown) => {
        // The sweep and the next reconnect subscribe and read it again.
        if (!this.closed) this.logger.warn({ err: error, runId: tracked.runId }, 'subscribing to run events failed; the stream is read every sweep until it works');
      })
      .then(() => this.read(tracked));
    this.track(subscribed);
  }

  /** A message announced new entries up to `lastId` (a hint: the entries come from XRANGE). */
  private announced(channel: string, lastId: string): void {
    const tracked = this.byChannel.get(channel);
    if (!tracked || this.closed) return;
    if (isStreamId(lastId) && compareStreamIds(lastId, tracked.cursor) <= 0) return;
    this.track(this.read(tracked));
  }

  /**
   * Reads `tracked` from its cursor to the end. One read per stream at a time, so entries go out
   * in order; a read asked for meanwhile makes the one under way run once more.
   */
  private read(tracked: TrackedStream): Promise<void> {
    if (tracked.reading) {
      tracked.again = true;
      return tracked.reading;
    }
    tracked.again = false;
    const reading = this.readToEnd(tracked)
      .catch((error: unknown) => {
        if (!this.closed) this.logger.warn({ err: error, runId: tracked.runId }, 'reading a run event stream failed; retried with the next event or sweep');
      })
      .then(() => {
        // One step, so no request can slip between the end of this read and the check.
        tracked.reading = undefined;
        if (tracked.again && this.isLive(tracked)) return this.read(tracked);
      });
    tracked.reading = reading;
    return reading;
  }

  private async readToEnd(tracked: TrackedStream): Promise<void> {
    while (this.isLive(tracked)) {
      let entries: Array<[string, string[]]>;
      try {
        entries = await this.redis.xrange(tracked.key, `(${tracked.cursor}`, '+', 'COUNT', BATCH);
      } catch (error) {
        // Redis answered, and refused this stream (WRONGTYPE): it alone is dropped.
        if (error instanceof ReplyError && !TRANSIENT_REPLY.test((error as Error).message)) return this.drop(tracked, error as Error);
        throw error;
      }
      this.dispatch(tracked, entries);
      if (entries.length < BATCH) return;
    }
  }

  private dispatch(tracked: TrackedStream, entries: Array<[string, string[]]>): void {
    for (const [id, fields] of entries) {
      if (!this.isLive(tracked)) return;
      tracked.cursor = id;
      const event = parseStoredEvent(fields);
      if (!event) {
        this.logger.warn({ runId: tracked.runId, entryId: id }, 'run event stream entry is not an event; skipped');
        continue;
      }
      for (const subscriber of [...tracked.subscribers]) {
        try {
          subscriber.deliver({ id, event });
        } catch (error) {
          this.logger.error({ err: error, runId: tracked.runId }, 'run event subscriber failed');
        }
      }
      // Nothing follows a terminal event; subscribers end on it and leave.
      if (isTerminalEvent(event)) this.forget(tracked);
    }
  }

  /** Redis refuses to read the stream: it is no longer followed, and its subscribers end. */
  private drop(tracked: TrackedStream, error: Error): void {
    this.forget(tracked);
    this.logger.error({ err: error, runId: tracked.runId, key: tracked.key, cursor: tracked.cursor }, 'run event stream cannot be read; its followers are ended');
    for (const subscriber of tracked.subscribers) {
      subscriber.end(`the event stream of run ${tracked.runId} cannot be read (${error.message}); poll GET /v1/runs/${tracked.runId}`);
    }
  }

  private isLive(tracked: TrackedStream): boolean {
    return !this.closed && this.streams.get(tracked.runId) === tracked;
  }

  private forget(tracked: TrackedStream): void {
    if (this.streams.get(tracked.runId) !== tracked) return;
    this.streams.delete(tracked.runId);
    this.byChannel.delete(tracked.channel);
    if (this.streams.size === 0) this.stopSweeping();
    // A later subscribe of the same run sends SUBSCRIBE after this on the same connection.
    this.subscriber?.unsubscribe(tracked.channel).catch((error: unknown) => this.logger.debug({ err: error }, 'unsubscribing from run events failed'));
  }

  private connectSubscriber(): RedisClient {
    if (this.subscriber) return this.subscriber;
    // Named, so an operator (and the security suite) can see there is one per coordinator.
    const subscriber = duplicateRedis(this.redis, { connectionName: runEventsConnectionName(this.store.keys.prefix) });
    subscriber.on('error', (error: Error) => this.logger.debug({ err: error }, 'run event subscriber connection error'));
    subscriber.on('message', (channel: string, message: string) => this.announced(channel, message));
    // Back after a disconnect: messages sent meanwhile are lost. Subscribe again (ioredis does
    // too; SUBSCRIBE is idempotent) and, once that took effect, read every stream.
    let connectedBefore = false;
    subscriber.on('ready', () => {
      if (!connectedBefore) {
        connectedBefore = true;
        return;
      }
      this.track(this.resubscribe());
    });
    this.subscriber = subscriber;
    return subscriber;
  }

  private async resubscribe(): Promise<void> {
    const channels = [...this.byChannel.keys()];
    if (this.closed || channels.length === 0 || !this.subscriber) return;
    try {
      await this.subscriber.subscribe(...channels);
    } catch (error) {
      this.logger.warn({ err: error }, 're-subscribing to run events failed; streams are read every sweep');
    }
    this.sweep();
  }

  /** Reads every followed stream (those read already are caught up at once). */
  private sweep(): void {
    if (this.closed) return;
    for (const tracked of [...this.streams.values()]) this.track(this.read(tracked));
  }

  private startSweeping(): void {
    if (this.sweepTimer || this.closed) return;
    this.sweepTimer = setInterval(() => this.sweep(), this.options.sweepMs);
    this.sweepTimer.unref();
  }

  private stopSweeping(): void {
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  private track(work: Promise<unknown>): void {
    this.pending.add(work);
    work.then(
      () => this.pending.delete(work),
      () => this.pending.delete(work),
    );
  }
}
