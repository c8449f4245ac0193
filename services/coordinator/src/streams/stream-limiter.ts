import { Inject, Injectable } from '@nestjs/common';
import { PodflowError } from '@podflow/protocol';
import type { CoordinatorConfig } from '../config';
import { CONFIG } from '../tokens';

/** What a client that hit a cap is told to wait before trying again. */
export const STREAM_RETRY_AFTER_SECONDS = 5;

/**
 * Caps the long-lived requests of this coordinator process (event streams and `?wait=true`
 * executions) per API key (MAX_STREAMS_PER_KEY) and in total (MAX_STREAMS), so one key cannot
 * hold every socket and follower the process can serve.
 */
@Injectable()
export class StreamLimiter {
  private readonly perKey = new Map<string, number>();
  private total = 0;

  constructor(@Inject(CONFIG) private readonly config: CoordinatorConfig) {}

  /**
   * Takes a slot for `keyId` (the API key's hash) and returns the function that gives it back
   * (idempotent).
   * @throws PodflowError TOO_MANY_REQUESTS naming the limit and its variable.
   */
  acquire(keyId: string, what: string): () => void {
    const held = this.perKey.get(keyId) ?? 0;
    if (held >= this.config.MAX_STREAMS_PER_KEY) {
      throw this.refusal(`this API key already holds ${held} open event streams and waiting executions, the most one key may (MAX_STREAMS_PER_KEY=${this.config.MAX_STREAMS_PER_KEY})`, what);
    }
    if (this.total >= this.config.MAX_STREAMS) {
      throw this.refusal(`the coordinator already serves ${this.total} open event streams and waiting executions, its limit (MAX_STREAMS=${this.config.MAX_STREAMS})`, what);
    }
    this.perKey.set(keyId, held + 1);
    this.total += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      const left = (this.perKey.get(keyId) ?? 1) - 1;
      if (left > 0) this.perKey.set(keyId, left);
      else this.perKey.delete(keyId);
    };
  }

  private refusal(reason: string, what: string): PodflowError {
    return new PodflowError('TOO_MANY_REQUESTS', `${what} refused: ${reason}; close some, poll GET /v1/runs/:id instead, or retry after ${STREAM_RETRY_AFTER_SECONDS} s`, {
      retryAfterSeconds: STREAM_RETRY_AFTER_SECONDS,
    });
  }
}
