import { Injectable } from '@nestjs/common';
import { RunStore, type StoredEvent } from '../orchestration/run-store';
import { RunEventHub, isTerminalEvent, type EventSubscriber } from './run-event-hub';
import { compareStreamIds, type StreamPosition } from './stream-ids';

/** Events handed over by the hub, waiting for their follower to take them. */
class EventQueue implements EventSubscriber {
  private readonly queued: StoredEvent[] = [];
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

  /** The next event, or `undefined` once the signal aborts. */
  async next(): Promise<StoredEvent | undefined> {
    while (this.queued.length === 0 && !this.signal.aborted) {
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
   * Yields the run's events after `after` (all of them by default; `$`: only new ones) as they are
   * written, and ends after the run's terminal event or when `signal` aborts. A finished run's
   * remaining events are read at once and the stream ends, so `$` on a finished run returns
   * immediately instead of waiting for events that will never come.
   */
  async *follow(runId: string, signal: AbortSignal, after: StreamPosition = '0-0'): AsyncGenerator<StoredEvent> {
    const last = await this.store.lastEvent(runId);
    let lastId = after === '$' ? (last?.id ?? '0-0') : after;
    if (!last || isTerminalEvent(last.event)) {
      // The terminal event is written with the final state: nothing can follow it.
      if (last && compareStreamIds(lastId, last.id) < 0) yield* await this.store.events(runId, lastId);
      return;
    }
    const queue = new EventQueue(signal);
    const cursor = this.hub.subscribe(runId, lastId, queue);
    try {
      if (compareStreamIds(lastId, cursor) < 0) {
        for (const stored of await this.store.events(runId, lastId, cursor)) {
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
