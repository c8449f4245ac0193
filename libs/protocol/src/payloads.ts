/**
 * Large JSON payloads (node outputs, job args, run outputs) travel by reference: the bytes live in
 * the object store and queues and run state carry only a `PayloadRef`, so Redis holds neither
 * megabytes per run nor per job.
 */
export interface PayloadRef {
  /**
   * Object-store key. It ends in the payload's sha256, so one key only ever names one content:
   * a re-delivered execution that stores a different output writes a different key, and a
   * cache keyed by `key` can never serve stale bytes.
   */
  key: string;
  /** Size of the stored UTF-8 JSON, in bytes. */
  size: number;
  /** Hex sha256 of the stored bytes; every reader checks it. */
  sha256: string;
}

/**
 * Default of `OUTPUT_INLINE_MAX_BYTES`: payloads whose JSON is larger are offloaded. 256 KiB keeps
 * run state, job data and result messages small (Redis copies them on every transition and every
 * queue move) while a typical structured output still travels inline, without a storage round trip.
 */
export const DEFAULT_OUTPUT_INLINE_MAX_BYTES = 256 * 1024;

/** Content type of stored payloads. */
export const PAYLOAD_CONTENT_TYPE = 'application/json';
