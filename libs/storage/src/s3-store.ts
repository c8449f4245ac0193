import { DeleteObjectCommand, GetObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { PodflowError } from '@podflow/protocol';
import { createHash } from 'node:crypto';
import { Readable, Transform, pipeline } from 'node:stream';
import { assertSafeKey, downloadDisposition } from './keys';
import type { ObjectStore, PutObjectInput, SignedUrl } from './object-store';
import { s3Error, type S3Target } from './s3-errors';

/** S3 refuses SigV4 pre-signed URLs that live longer than 7 days. */
export const MAX_S3_URL_TTL_SECONDS = 7 * 24 * 3600;

export interface S3StoreOptions {
  bucket: string;
  /** Any S3-compatible endpoint (MinIO, Ceph, R2, ...); unset means AWS S3 in `region`. */
  endpoint?: string;
  /**
   * Endpoint written into pre-signed URLs only, for when workers reach S3 at an in-cluster address
   * but users download through another one. Defaults to `endpoint`.
   */
  publicEndpoint?: string;
  /** Default `us-east-1`. */
  region?: string;
  /** `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key` (MinIO needs it). */
  forcePathStyle?: boolean;
  /** Static credentials; without them the AWS SDK default chain (env, profiles, IRSA, IMDS) is used. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  defaultTtlSeconds: number;
  /** Prepended to every key, e.g. `podflow/` to share a bucket; `/`-separated like keys. */
  keyPrefix?: string;
}

/**
 * Objects in an S3 bucket; downloads are SigV4 pre-signed GET URLs that S3 itself serves, so the
 * coordinator never proxies file bytes.
 */
export class S3Store implements ObjectStore {
  private readonly client: S3Client;
  private readonly signer: S3Client;
  private readonly target: S3Target;
  private readonly prefix: string;

  constructor(private readonly options: S3StoreOptions) {
    assertTtl(options.defaultTtlSeconds, 'the default URL TTL (FILE_URL_TTL_SECONDS)');
    const region = options.region ?? 'us-east-1';
    this.prefix = options.keyPrefix ? normalizePrefix(options.keyPrefix) : '';
    this.target = { bucket: options.bucket, endpoint: options.endpoint ?? `AWS S3 (${region})` };
    const base: S3ClientConfig = {
      region,
      forcePathStyle: options.forcePathStyle ?? false,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      // Third-party S3 servers often reject the CRC32 trailers newer SDKs add to every upload;
      // object integrity is checked against the sha256 instead (see put).
      ...(options.endpoint ? { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' } : {}),
    };
    this.client = new S3Client({ ...base, ...(options.endpoint ? { endpoint: options.endpoint } : {}) });
    const publicEndpoint = options.publicEndpoint ?? options.endpoint;
    // Signing is offline, so a second client costs nothing; sharing one would put the wrong host in URLs.
    this.signer = publicEndpoint === options.endpoint ? this.client : new S3Client({ ...base, ...(publicEndpoint ? { endpoint: publicEndpoint } : {}) });
  }

  /**
   * Streams the body with lib-storage's `Upload` (one PUT when small, multipart when large, any
   * length). When `sha256` is given it is stored as `x-amz-meta-sha256` and the streamed bytes are
   * checked against it (and against `size`): a mismatch deletes the object and throws, so metadata
   * never lies about the content.
   */
  async put(input: PutObjectInput): Promise<void> {
    const key = this.keyOf(input.key);
    const check = new DigestCheck();
    const body = input.sha256 === undefined && input.size === undefined ? input.body : check.wrap(input.body);
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.options.bucket,
        Key: key,
        Body: body,
        ContentType: input.contentType,
        ...(input.sha256 ? { Metadata: { sha256: input.sha256 } } : {}),
      },
    });
    try {
      await upload.done();
    } catch (error) {
      // The upload stopped reading: release the source (an open file, usually) now, not at GC.
      for (const stream of [body, input.body]) if (stream instanceof Readable) stream.destroy();
      throw s3Error(error, this.target, `uploading "${key}"`);
    }
    const mismatch = check.mismatch(input.sha256, input.size);
    if (mismatch) {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: key })).catch(() => undefined);
      throw new PodflowError('INTERNAL', `uploading "${key}" to bucket "${this.options.bucket}": ${mismatch}; the file changed while it was uploaded`);
    }
  }

  async sign(key: string, ttlSeconds = this.options.defaultTtlSeconds): Promise<SignedUrl> {
    const objectKey = this.keyOf(key);
    assertTtl(ttlSeconds, 'the URL TTL');
    // X-Amz-Date has whole seconds; signing at a whole second makes expiresAt exact.
    const signingDate = new Date(Math.floor(Date.now() / 1000) * 1000);
    try {
      // The bucket answers a signed URL with this Content-Disposition (signed in, not changeable).
      const command = new GetObjectCommand({ Bucket: this.options.bucket, Key: objectKey, ResponseContentDisposition: downloadDisposition(key) });
      const url = await getSignedUrl(this.signer, command, { expiresIn: ttlSeconds, signingDate });
      return { url, expiresAt: new Date(signingDate.getTime() + ttlSeconds * 1000) };
    } catch (error) {
      throw s3Error(error, this.target, `signing a URL for "${objectKey}"`);
    }
  }

  async get(key: string): Promise<Readable> {
    const objectKey = this.keyOf(key);
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: objectKey }));
      if (!(response.Body instanceof Readable)) throw new PodflowError('INTERNAL', `reading "${objectKey}" from bucket "${this.options.bucket}" returned no stream body`);
      return response.Body;
    } catch (error) {
      const mapped = s3Error(error, this.target, `reading "${objectKey}"`);
      if (mapped.code === 'NOT_FOUND') throw new PodflowError('NOT_FOUND', `no stored file at key "${key}" (bucket "${this.options.bucket}")`, mapped.details);
      throw mapped;
    }
  }

  private keyOf(key: string): string {
    assertSafeKey(key);
    return `${this.prefix}${key}`;
  }
}

function assertTtl(ttlSeconds: number, what: string): void {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_S3_URL_TTL_SECONDS) {
    throw new PodflowError('BAD_REQUEST', `${what} must be a whole number of seconds from 1 to ${MAX_S3_URL_TTL_SECONDS} (7 days, the S3 limit for pre-signed URLs); got ${ttlSeconds}`);
  }
}

function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  assertSafeKey(trimmed);
  return `${trimmed}/`;
}

/** Hashes and counts the bytes on their way to S3. */
class DigestCheck {
  private readonly hash = createHash('sha256');
  private bytes = 0;

  wrap(body: Readable | Buffer): Readable | Buffer {
    if (Buffer.isBuffer(body)) {
      this.hash.update(body);
      this.bytes = body.length;
      return body;
    }
    const tap = new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        this.hash.update(chunk);
        this.bytes += chunk.length;
        done(null, chunk);
      },
    });
    // A failing source destroys `tap` with its error, which fails the upload.
    pipeline(body, tap, () => undefined);
    return tap;
  }

  mismatch(sha256: string | undefined, size: number | undefined): string | undefined {
    if (size !== undefined && size !== this.bytes) return `expected ${size} bytes but read ${this.bytes}`;
    const actual = sha256 !== undefined ? this.hash.digest('hex') : undefined;
    if (sha256 !== undefined && actual !== sha256.toLowerCase()) return `expected sha256 ${sha256} but the bytes hash to ${actual}`;
    return undefined;
  }
}
