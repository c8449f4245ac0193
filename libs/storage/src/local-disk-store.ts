import { PodflowError } from '@podflow/protocol';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { assertSafeKey } from './keys';
import type { ObjectStore, PutObjectInput, SignedUrl } from './object-store';

export interface LocalDiskStoreOptions {
  /** Directory objects are kept in. */
  root: string;
  /** Base URL of the coordinator that serves `GET /v1/files/<key>`, e.g. `http://localhost:8080`. */
  publicBaseUrl: string;
  /** HMAC key for URL signatures; every coordinator and worker sharing the store needs the same. */
  secret: string;
  /** Lifetime of a URL when the caller asks for none, and the longest `verify` accepts (FILE_URL_TTL_SECONDS). */
  defaultTtlSeconds: number;
}

/**
 * Clock difference tolerated between the process that signed a URL (a worker) and the one that
 * verifies it (a coordinator): an `expires` further ahead than the TTL plus this was not signed by
 * this deployment's rules (a forged or leaked long-lived URL) and is refused.
 */
export const MAX_URL_CLOCK_SKEW_SECONDS = 120;

/**
 * The embedded default store: objects on local disk, served by the coordinator through
 * HMAC-signed, expiring URLs (`/v1/files/<key>?expires=<epoch s>&signature=<hex>`).
 */
export class LocalDiskStore implements ObjectStore {
  constructor(private readonly options: LocalDiskStoreOptions) {}

  async put(input: PutObjectInput): Promise<void> {
    const target = this.pathOf(input.key);
    // Written under a short random name in one directory of the root, then renamed into place: a
    // crash mid-write never leaves a truncated object, and the temporary name stays far below
    // NAME_MAX whatever the key (a suffix on the target's own name once made a 250-character file
    // name unstorable).
    const partialDir = join(this.options.root, PARTIAL_DIR);
    const partial = join(partialDir, randomBytes(8).toString('hex'));
    try {
      await mkdir(dirname(target), { recursive: true });
      await mkdir(partialDir, { recursive: true });
      // 'wx': never write through something already at this name.
      const sink = createWriteStream(partial, { flags: 'wx' });
      if (Buffer.isBuffer(input.body)) {
        await pipeline([input.body], sink);
      } else {
        await pipeline(input.body, sink);
      }
      await rename(partial, target);
    } catch (error) {
      await rm(partial, { force: true });
      throw refusedName(error, input.key);
    }
  }

  async sign(key: string, ttlSeconds = this.options.defaultTtlSeconds): Promise<SignedUrl> {
    assertSafeKey(key);
    const expires = Math.floor(Date.now() / 1000) + ttlSeconds;
    const signature = signLocalUrl(this.options.secret, key, expires);
    const path = key.split('/').map(encodeURIComponent).join('/');
    const base = this.options.publicBaseUrl.replace(/\/+$/, '');
    return { url: `${base}/v1/files/${path}?expires=${expires}&signature=${signature}`, expiresAt: new Date(expires * 1000) };
  }

  async get(key: string): Promise<Readable> {
    const path = this.pathOf(key);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) throw new PodflowError('NOT_FOUND', `no stored file at key "${key}"`);
    return createReadStream(path);
  }

  /**
   * Checks a URL's `expires` and `signature` for `key`. Returns a reason when the URL must be
   * refused, `undefined` when it is good. An expiry beyond the configured TTL (plus clock skew) is
   * refused even with a valid signature: whoever holds the secret must not mint URLs for years.
   */
  verify(key: string, expires: string | undefined, signature: string | undefined, now = Date.now()): string | undefined {
    if (!expires || !signature || !/^\d+$/.test(expires)) return 'the URL has no valid expires/signature parameters';
    const expected = Buffer.from(signLocalUrl(this.options.secret, key, Number(expires)), 'hex');
    const given = Buffer.from(signature, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'the URL signature does not match';
    if (Number(expires) * 1000 < now) return 'the URL has expired; ask for a fresh one with POST /v1/runs/:id/nodes/:nodeId/files/sign';
    // Checked after the signature so a refusal never tells a forger which expiry would pass.
    const latest = Math.floor(now / 1000) + this.options.defaultTtlSeconds + MAX_URL_CLOCK_SKEW_SECONDS;
    if (Number(expires) > latest) {
      return `the URL expires further ahead than FILE_URL_TTL_SECONDS (${this.options.defaultTtlSeconds}s) allows; ask for a fresh one with POST /v1/runs/:id/nodes/:nodeId/files/sign`;
    }
    return undefined;
  }

  private pathOf(key: string): string {
    assertSafeKey(key);
    return join(this.options.root, ...key.split('/'));
  }
}

/** Temporary files of `put`; no key starts with it (keys begin with `tenants/`). */
const PARTIAL_DIR = '.partial';

/** A name the file system refuses, as the OUTPUT_INVALID it is (see `isObjectRefused`); other errors unchanged. */
function refusedName(error: unknown, key: string): unknown {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code !== 'ENAMETOOLONG' && code !== 'EILSEQ') return error;
  return new PodflowError('OUTPUT_INVALID', `the local store cannot hold key ${JSON.stringify(key)}: the file system refused a name in it (${code}); shorten the file name`, {
    key,
    errno: code,
  });
}

function signLocalUrl(secret: string, key: string, expires: number): string {
  return createHmac('sha256', secret).update(`${key}\n${expires}`).digest('hex');
}
