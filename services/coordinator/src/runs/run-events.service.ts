import { Inject, Injectable } from '@nestjs/common';
import { isTerminalRunPhase } from '@podflow/protocol';
import type { Redis } from 'ioredis';
import { RunStore, type StoredEvent } from '../orchestration/run-store';
import { REDIS } from '../tokens';

/** How long one blocking read waits before the loop checks whether the reader went away. */
const BLOCK_MS = 5000;

/** Live reading of a run's event stream (SSE, `wait=true`). */
@Injectable()
export class RunEventsService {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly store: RunStore,
  ) {}

  /**
   * Yields the run's events after `afterId` (all of them by default) as they are written, and ends
   * after the run's terminal event or when `signal` aborts. Uses its own connection because
   * blocking reads hold a connection for their whole wait.
   */
  async *follow(runId: string, signal: AbortSignal, afterId = '0-0'): AsyncGenerator<StoredEvent> {
    const reader = this.redis.duplicate();
    const stop = () => reader.disconnect();
    signal.addEventListener('abort', stop, { once: true });
    let lastId = afterId;
    try {
      while (!signal.aborted) {
        const reply = await reader.xread('COUNT', 500, 'BLOCK', BLOCK_MS, 'STREAMS', this.store.keys.events(runId), lastId).catch((error: unknown) => {
          if (signal.aborted) return null;
          throw error;
        });
        for (const [, entries] of reply ?? []) {
          for (const [id, fields] of entries) {
            lastId = id;
            const stored: StoredEvent = { id, event: JSON.parse(fields[1] ?? '{}') };
            yield stored;
            if (stored.event.type === 'run' && isTerminalRunPhase(stored.event.status)) return;
          }
        }
      }
    } finally {
      signal.removeEventListener('abort', stop);
      reader.disconnect();
    }
  }

  /** Resolves when the run is terminal, or after `timeoutMs`. */
  async waitUntilFinished(runId: string, timeoutMs: number): Promise<void> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      for await (const _event of this.follow(runId, controller.signal)) {
        // follow() returns by itself after the terminal run event.
      }
    } finally {
      clearTimeout(timer);
    }
  }
}
