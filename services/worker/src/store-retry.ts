import { isObjectRefused } from '@podflow/storage';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * How often storing an execution's files and output is tried before the execution is reported
 * failed. Once the code has run, this is the only retry there is: BullMQ retrying the job would
 * run the user's code again.
 */
export interface StoreRetryPolicy {
  /** Tries in all, at least 1. */
  attempts: number;
  /** Wait before the second try; doubled before each further one. */
  delayMs: number;
}

/** Four tries over about 3.5 s of waiting (each S3 call also retries inside the AWS SDK). */
export const DEFAULT_STORE_RETRY: StoreRetryPolicy = { attempts: 4, delayMs: 500 };

/**
 * Thrown when every try failed; `cause` is the last store error. An object the store refuses for
 * what it is (`isObjectRefused`: its name or key) is rethrown at once, unwrapped, since no later
 * try can succeed.
 */
export class StoreRetriesExhaustedError extends Error {
  constructor(
    readonly attempts: number,
    cause: unknown,
  ) {
    super(`${attempts} tries failed, the last with: ${(cause as Error | undefined)?.message ?? String(cause)}`, { cause });
    this.name = 'StoreRetriesExhaustedError';
  }
}

/** Runs `action` (a put, a sign, an offload: each safe to repeat) under `policy`. */
export async function withStoreRetries<T>(action: () => Promise<T>, policy: StoreRetryPolicy, wait: (ms: number) => Promise<unknown> = sleep): Promise<T> {
  const attempts = Math.max(1, policy.attempts);
  for (let attempt = 1; ; attempt++) {
    try {
      return await action();
    } catch (error) {
      if (isObjectRefused(error)) throw error;
      if (attempt >= attempts) throw new StoreRetriesExhaustedError(attempts, error);
      await wait(policy.delayMs * 2 ** (attempt - 1));
    }
  }
}
