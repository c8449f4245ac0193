import { PAYLOAD_CONTENT_TYPE, PodflowError, type JsonObject, type PayloadRef } from '@podflow/protocol';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { ObjectStore } from './object-store';

/** Why a referenced payload cannot be used: gone from the store, or not the bytes the reference names. */
export type PayloadProblem = 'missing' | 'corrupt';

/**
 * A referenced payload is missing or does not match its reference. Not transient: reading again
 * returns the same. Storage that is merely unreachable throws the store's own error instead, so
 * callers can tell "retry later" from "these bytes are lost".
 */
export class PayloadUnavailableError extends PodflowError {
  constructor(
    readonly ref: PayloadRef,
    readonly problem: PayloadProblem,
    detail: string,
  ) {
    super('INTERNAL', `stored payload "${ref.key}" is ${problem}: ${detail}`, { key: ref.key, problem });
    this.name = 'PayloadUnavailableError';
  }
}

export interface PayloadStoreOptions {
  /** JSON larger than this many bytes is offloaded; this size or less stays inline. */
  inlineMaxBytes: number;
  /**
   * Bytes of payload JSON kept parsed in memory, least recently used evicted first (0: none).
   * Keys are immutable (they end in the sha256), so a cached entry is never stale.
   */
  cacheMaxBytes?: number;
}

interface CacheEntry {
  value: JsonObject;
  size: number;
}

/**
 * JSON payloads on top of an `ObjectStore`: decides what stays inline, stores the rest under a
 * caller-chosen key with its sha256 recorded, and loads references back, verified. Works with any
 * `ObjectStore` (local disk, S3).
 *
 * Values handed out by `load` may be shared with the cache and with other callers: treat them as
 * read-only (clone before changing them).
 */
export class PayloadStore {
  readonly inlineMaxBytes: number;
  private readonly cacheMaxBytes: number;
  private readonly cache = new Map<string, CacheEntry>();
  private cachedBytes = 0;
  private readonly loading = new Map<string, Promise<JsonObject>>();

  constructor(
    private readonly store: ObjectStore,
    options: PayloadStoreOptions,
  ) {
    this.inlineMaxBytes = options.inlineMaxBytes;
    this.cacheMaxBytes = options.cacheMaxBytes ?? 0;
  }

  /** The UTF-8 JSON of `value`: what would be stored, and what its inline size is measured on. */
  encode(value: JsonObject): Buffer {
    return Buffer.from(JSON.stringify(value), 'utf8');
  }

  fitsInline(encoded: Buffer): boolean {
    return encoded.length <= this.inlineMaxBytes;
  }

  /**
   * Stores `value` (already `encode`d) and returns its reference.
   * @param keyOf builds the key from the payload's sha256, e.g. `(sha256) => nodePayloadKey({ ..., sha256 })`.
   * @param cache keep `value` in the cache for later loads (false for payloads only others read).
   */
  async put(value: JsonObject, encoded: Buffer, keyOf: (sha256: string) => string, cache = true): Promise<PayloadRef> {
    const sha256 = createHash('sha256').update(encoded).digest('hex');
    const ref: PayloadRef = { key: keyOf(sha256), size: encoded.length, sha256 };
    await this.store.put({ key: ref.key, body: encoded, contentType: PAYLOAD_CONTENT_TYPE, sha256, size: encoded.length });
    if (cache) this.remember(ref, value);
    return ref;
  }

  /** `undefined` when `value` fits inline; otherwise stores it and returns its reference. */
  async offload(value: JsonObject, keyOf: (sha256: string) => string): Promise<PayloadRef | undefined> {
    const encoded = this.encode(value);
    return this.fitsInline(encoded) ? undefined : this.put(value, encoded, keyOf);
  }

  /**
   * The payload `ref` names, checked against its size and sha256. Concurrent loads of one key
   * share one read.
   * @throws PayloadUnavailableError when the object is missing or its bytes do not match `ref`;
   * the store's own error when storage cannot be reached (worth retrying).
   */
  async load(ref: PayloadRef): Promise<JsonObject> {
    const hit = this.cache.get(ref.key);
    if (hit) {
      // Re-insert: Map iteration order is the LRU order.
      this.cache.delete(ref.key);
      this.cache.set(ref.key, hit);
      return hit.value;
    }
    const pending = this.loading.get(ref.key);
    if (pending) return pending;
    const read = readPayload(this.store, ref).then((value) => {
      this.remember(ref, value);
      return value;
    });
    this.loading.set(ref.key, read);
    try {
      return await read;
    } finally {
      this.loading.delete(ref.key);
    }
  }

  private remember(ref: PayloadRef, value: JsonObject): void {
    if (ref.size > this.cacheMaxBytes) return;
    const existing = this.cache.get(ref.key);
    if (existing) {
      this.cache.delete(ref.key);
      this.cachedBytes -= existing.size;
    }
    this.cache.set(ref.key, { value, size: ref.size });
    this.cachedBytes += ref.size;
    for (const [key, entry] of this.cache) {
      if (this.cachedBytes <= this.cacheMaxBytes) break;
      this.cache.delete(key);
      this.cachedBytes -= entry.size;
    }
  }
}

/** Reads and verifies one payload; stops reading as soon as it is longer than `ref.size`. */
async function readPayload(store: ObjectStore, ref: PayloadRef): Promise<JsonObject> {
  let body: Readable;
  try {
    body = await store.get(ref.key);
  } catch (error) {
    if (error instanceof PodflowError && error.code === 'NOT_FOUND') {
      throw new PayloadUnavailableError(ref, 'missing', `the object store has no such object (${error.message})`);
    }
    throw error;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    size += bytes.length;
    if (size > ref.size) {
      body.destroy();
      throw new PayloadUnavailableError(ref, 'corrupt', `it holds more than the ${ref.size} bytes its reference records`);
    }
    chunks.push(bytes);
  }
  if (size !== ref.size) throw new PayloadUnavailableError(ref, 'corrupt', `it holds ${size} bytes, its reference records ${ref.size}`);
  const encoded = Buffer.concat(chunks, size);
  const sha256 = createHash('sha256').update(encoded).digest('hex');
  if (sha256 !== ref.sha256) throw new PayloadUnavailableError(ref, 'corrupt', `its sha256 is ${sha256}, its reference records ${ref.sha256}`);
  let value: unknown;
  try {
    value = JSON.parse(encoded.toString('utf8'));
  } catch (error) {
    throw new PayloadUnavailableError(ref, 'corrupt', `it is not JSON (${(error as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new PayloadUnavailableError(ref, 'corrupt', 'it is not a JSON object');
  }
  return value as JsonObject;
}
