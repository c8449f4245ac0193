import type { Readable } from 'node:stream';

export interface PutObjectInput {
  key: string;
  body: Readable | Buffer;
  contentType: string;
  /** Hex sha256 of the body, when known; S3 keeps it as `x-amz-meta-sha256` and checks the upload against it. */
  sha256?: string;
  /** Byte length of the body, when known; checked against what was streamed. */
  size?: number;
}

export interface SignedUrl {
  url: string;
  expiresAt: Date;
}

/**
 * Where node files (and, later, large payloads and layer archives) live. The embedded default is
 * `LocalDiskStore`; S3 implements the same interface, so drivers and services never care which.
 */
export interface ObjectStore {
  put(input: PutObjectInput): Promise<void>;
  /** A URL anyone holding it may GET until it expires. `ttlSeconds` defaults to the store's TTL. */
  sign(key: string, ttlSeconds?: number): Promise<SignedUrl>;
  /** Reads an object back; throws PodflowError NOT_FOUND when it does not exist. */
  get(key: string): Promise<Readable>;
}
