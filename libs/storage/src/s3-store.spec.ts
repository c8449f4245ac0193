// Against the real MinIO that `npm test` starts (scripts/lib/services.mjs), never a fake.
import { DeleteObjectsCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { MAX_S3_URL_TTL_SECONDS, S3Store, contentTypeOf, downloadDisposition, type S3StoreOptions } from './index';

interface TestS3 {
  endpoint: string;
  bucket: string;
}

function testS3(): TestS3 {
  const { PODFLOW_TEST_S3_ENDPOINT: endpoint, PODFLOW_TEST_S3_BUCKET: bucket, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY } = process.env;
  if (!endpoint || !bucket || !AWS_ACCESS_KEY_ID || !AWS_SECRET_ACCESS_KEY) {
    throw new Error('PODFLOW_TEST_S3_ENDPOINT, PODFLOW_TEST_S3_BUCKET and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set: run this suite with `npm test -- libs/storage`, which starts a private MinIO');
  }
  return { endpoint, bucket };
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function download(url: string): Promise<{ status: number; contentType: string | null; disposition: string | null; body: Buffer }> {
  const response = await fetch(url);
  return { status: response.status, contentType: response.headers.get('content-type'), disposition: response.headers.get('content-disposition'), body: Buffer.from(await response.arrayBuffer()) };
}

/** A port nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolvePort) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 1));
    });
  });
}

describe('S3Store (MinIO)', () => {
  let s3: TestS3;
  let raw: S3Client;
  let options: S3StoreOptions;
  let store: S3Store;
  const prefix = `spec-${randomUUID().slice(0, 8)}`;

  beforeAll(() => {
    s3 = testS3();
    // Credentials come from the SDK default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY here).
    options = { bucket: s3.bucket, endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', defaultTtlSeconds: 60, keyPrefix: prefix };
    store = new S3Store(options);
    raw = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1' });
  });

  afterAll(async () => {
    if (!raw) return;
    const listed = await raw.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${prefix}/` }));
    const objects = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (objects.length > 0) await raw.send(new DeleteObjectsCommand({ Bucket: s3.bucket, Delete: { Objects: objects } }));
    raw.destroy();
  });

  it('stores Buffers and streams of unknown length and reads them back byte for byte', async () => {
    const small = randomBytes(1000);
    // Larger than lib-storage's 5 MiB part size: goes up as a multipart upload.
    const chunks = Array.from({ length: 11 }, () => randomBytes(1024 * 1024));
    const large = Buffer.concat(chunks);
    await store.put({ key: 'rw/small.bin', body: small, contentType: 'application/octet-stream' });
    await store.put({ key: 'rw/large.bin', body: Readable.from(chunks), contentType: 'application/octet-stream' });
    expect((await buffer(await store.get('rw/small.bin'))).equals(small)).toBe(true);
    expect(sha256(await buffer(await store.get('rw/large.bin')))).toBe(sha256(large));
  });

  it('keeps objects under the key prefix, with the content type and the sha256 as metadata', async () => {
    const body = Buffer.from('id,amount\n1,9.5\n2,3.25\n');
    await store.put({ key: 'meta/report.csv', body, contentType: contentTypeOf('report.csv'), sha256: sha256(body), size: body.length });
    const head = await raw.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/meta/report.csv` }));
    expect(head.ContentType).toBe('text/csv');
    expect(head.ContentLength).toBe(body.length);
    expect(head.Metadata).toEqual({ sha256: sha256(body) });
  });

  it('refuses and removes an upload whose bytes do not match the given sha256 or size', async () => {
    const body = Buffer.from('the real content');
    await expect(store.put({ key: 'meta/lie.txt', body: Readable.from([body]), contentType: 'text/plain', sha256: sha256(Buffer.from('other')) })).rejects.toThrow(
      /expected sha256 .* changed while it was uploaded/,
    );
    await expect(store.get('meta/lie.txt')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(store.put({ key: 'meta/short.txt', body, contentType: 'text/plain', size: body.length + 1 })).rejects.toThrow(/expected 17 bytes but read 16/);
  });

  it('pre-signs URLs that plain fetch downloads byte for byte (CSV and 3 MiB binary)', async () => {
    const csv = Buffer.from(Array.from({ length: 500 }, (_, i) => `${i},${i * i},"row ${i}"`).join('\n'));
    const binary = randomBytes(3 * 1024 * 1024);
    await store.put({ key: 'dl/report.csv', body: csv, contentType: contentTypeOf('report.csv'), sha256: sha256(csv) });
    await store.put({ key: 'dl/blob.bin', body: Readable.from([binary.subarray(0, 1_000_000), binary.subarray(1_000_000)]), contentType: contentTypeOf('blob.bin') });
    for (const [key, bytes, type] of [['dl/report.csv', csv, 'text/csv'], ['dl/blob.bin', binary, 'application/octet-stream']] as const) {
      const { url, expiresAt } = await store.sign(key);
      expect(new URL(url).origin).toBe(new URL(s3.endpoint).origin);
      expect(expiresAt.getTime()).toBeGreaterThan(Date.now() + 55_000);
      const got = await download(url);
      expect(got.status).toBe(200);
      expect(got.contentType).toBe(type);
      expect(sha256(got.body)).toBe(sha256(bytes));
      // Signed in: the bucket serves it as a download, never as a page of its origin.
      expect(got.disposition).toBe(downloadDisposition(key));
    }
  });

  it('signs URLs that expire with their TTL, and a fresh sign works again', async () => {
    const body = Buffer.from('short-lived');
    await store.put({ key: 'ttl/a.txt', body, contentType: 'text/plain' });
    const short = await store.sign('ttl/a.txt', 2);
    expect(new URL(short.url).searchParams.get('X-Amz-Expires')).toBe('2');
    expect((await download(short.url)).status).toBe(200);
    await sleep(short.expiresAt.getTime() - Date.now() + 1500);
    const expired = await download(short.url);
    expect(expired.status).toBe(403);
    expect(expired.body.toString()).toMatch(/expired/i);
    const fresh = await store.sign('ttl/a.txt', 60);
    expect((await download(fresh.url)).body.equals(body)).toBe(true);
  });

  it('rejects TTLs S3 cannot honour', async () => {
    await expect(store.sign('ttl/a.txt', MAX_S3_URL_TTL_SECONDS + 1)).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/7 days/) });
    await expect(store.sign('ttl/a.txt', 0)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(() => new S3Store({ ...options, defaultTtlSeconds: 8 * 24 * 3600 })).toThrow(/FILE_URL_TTL_SECONDS.*7 days/);
    await expect(store.sign('ttl/a.txt', MAX_S3_URL_TTL_SECONDS)).resolves.toMatchObject({ url: expect.stringContaining('X-Amz-Expires=604800') });
  });

  it('signs with the public endpoint while reading and writing through the internal one', async () => {
    const internal = new URL(s3.endpoint);
    const publicEndpoint = `http://localhost:${internal.port}`;
    const split = new S3Store({ ...options, publicEndpoint });
    const body = randomBytes(2048);
    await split.put({ key: 'public/x.bin', body, contentType: 'application/octet-stream' });
    const { url } = await split.sign('public/x.bin');
    expect(new URL(url).host).toBe(`localhost:${internal.port}`);
    expect((await download(url)).body.equals(body)).toBe(true);
  });

  it('answers NOT_FOUND for a missing key', async () => {
    await expect(store.get('nothing/here.txt')).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('no stored file at key "nothing/here.txt"') });
  });

  it('rejects keys that are not plain relative keys', async () => {
    await expect(store.put({ key: '../evil', body: Buffer.from('x'), contentType: 'text/plain' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(store.get('a/../../etc/passwd')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(store.sign('/absolute')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(store.sign('a//b')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(() => new S3Store({ ...options, keyPrefix: '../up' })).toThrow(/not a plain relative key/);
  });

  it('names the bucket and what to check when the bucket does not exist', async () => {
    const bucket = `missing-${randomUUID().slice(0, 8)}`;
    const wrong = new S3Store({ ...options, bucket });
    const failure = wrong.put({ key: 'a.txt', body: Buffer.from('x'), contentType: 'text/plain' });
    await expect(failure).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringContaining(`bucket "${bucket}" at ${s3.endpoint} does not exist`) });
    await expect(failure).rejects.toThrow(/create the bucket or fix S3_BUCKET/);
    await expect(wrong.get('a.txt')).rejects.toThrow(/does not exist/);
  });

  it('says access was denied, and what to check, for credentials the server does not know', async () => {
    const denied = new S3Store({ ...options, credentials: { accessKeyId: 'not-a-key', secretAccessKey: 'not-a-secret-at-all' } });
    await expect(denied.put({ key: 'a.txt', body: Buffer.from('x'), contentType: 'text/plain' })).rejects.toMatchObject({
      code: 'INTERNAL',
      message: expect.stringMatching(/access to bucket ".*" at .* was denied \(InvalidAccessKeyId\); check the credentials/),
    });
  });

  it('says the endpoint cannot be reached when nothing listens there', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const unreachable = new S3Store({ ...options, endpoint });
    await expect(unreachable.get('a.txt')).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(new RegExp(`cannot reach bucket ".*" at ${endpoint}.*check S3_ENDPOINT`)) });
  });
});
