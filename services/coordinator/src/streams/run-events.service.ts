import { Injectable } from '@nestjs/common';
import { PodflowError } from '@podflow/protocol';
import { RunStore, type StoredEvent } from '../orchestration/run-store';
import { RunEventHub, isTerminalEvent, type EventSubscriber } from './run-event-hub';
import { compareStreamIds, type StreamPosition } from './stream-ids';

/** Events handed over by the hub, waiting for their follower to take them. */
class EventQueue implements EventSubscriber {
  private readonly queued: StoredEvent[] = [];
  private ended = false;
  private wakeUp?: () => void;
  private readonly onAbort = () => this.wakeUp?.();

  constructor(private readonly signal: AbortSignal) {
    // One listener for the queue's whole life: a listener per wait would pile up on long streams.
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  deliver(event: StoredEvent): void {
    this.queued.push(event);
    this.wakeUp?.();
  }

  end(): void {
    this.ended = true;
    this.wakeUp?.();
  }

  /** The next event, or `undefined` once the signal aborts or the hub dropped the stream. */
  async next(): Promise<StoredEvent | undefined> {
    while (this.queued.length === 0 && !this.signal.aborted && !this.ended) {
      await new Promise<void>((resolve) => (this.wakeUp = resolve));
      this.wakeUp = undefined;
    }
    return this.signal.aborted ? undefined : this.queued.shift();
  }

  close(): void {
    this.signal.removeEventListener('abort', this.onAbort);
  }
}

/** Live reading of a run's event stream (SSE, `wait=true`), through the process's one reader (RunEventHub). */
@Injectable()
export class RunEventsService {
  constructor(
    private readonly store: RunStore,
    private readonly hub: RunEventHub,
  ) {}

  /**
   * Where a follower of `runId` starts, from its Last-Event-ID: `$` is the run's last event now;
   * an id must be no later than that (a client can only hold ids this API sent), else it could
   * only wait for events that never come.
   * @throws PodflowError BAD_REQUEST for an id after the run's last event.
   */
  async startAfter(runId: string, after: StreamPosition): Promise<string> {
    const last = (await this.store.lastEvent(runId))?.id ?? '0-0';
    if (after === '$') return last;
    if (compareStreamIds(after, last) > 0) {
      throw new PodflowError(
        'BAD_REQUEST',
        `Last-Event-ID "${after}" is after the last event of run ${runId} (${last}): send back the "id:" of an event this stream sent, "$" for new events only, or no header to start from the beginning`,
      );
    }
    return after;
  }

  /**
   * Yields the run's events after `afterId` (an id from startAfter; all of them by default) as
   * they are written, and ends after the run's terminal event, when `signal` aborts, or when the
   * stream can no longer be read. A finished run's remaining events are read at once and the
   * stream ends. The hub follows the stream from its own position; this follower's position only
   * filters what it hands on.
   */
  async *follow(runId: string, signal: AbortSignal, afterId = '0-0'): AsyncGenerator<StoredEvent> {
    const last = await this.store.lastEvent(runId);
    let lastId = afterId;
    if (!last || isTerminalEvent(last.event)) {
      // The terminal event is written with the final state: nothing can follow it.
      if (last && compareStreamIds(lastId, last.id) < 0) yield* this.store.events(runId, lastId);
      return;
    }
    const queue = new EventQueue(signal);
    const cursor = this.hub.subscribe(runId, last.id, queue);
    try {
      if (compareStreamIds(lastId, cursor) < 0) {
        for await (const stored of this.store.events(runId, lastId, cursor)) {
          yield stored;
          lastId = stored.id;
          if (isTerminalEvent(stored.event)) return;
        }
      }
      for (let stored = await queue.next(); stored; stored = await queue.next()) {
        if (compareStreamIds(stored.id, lastId) <= 0) continue;
        yield stored;
        lastId = stored.id;
        if (isTerminalEvent(stored.event)) return;
      }
    } finally {
      this.hub.unsubscribe(runId, queue);
      queue.close();
    }
  }

  /** Resolves when the run is terminal, after `timeoutMs`, or when `signal` aborts (the client left). */
  async waitUntilFinished(runId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const stop = AbortSignal.any([AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])]);
    for await (const _event of this.follow(runId, stop)) {
      // follow() returns by itself after the terminal run event.
    }
  }
}
