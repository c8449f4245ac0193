import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { LocalDiskStore, contentTypeOf, fileKey } from './index';

describe('LocalDiskStore', () => {
  let root: string;
  let store: LocalDiskStore;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'podflow-store-'));
    store = new LocalDiskStore({ root, publicBaseUrl: 'http://localhost:8080/', secret: 's3cret', defaultTtlSeconds: 60 });
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('stores buffers and streams and reads them back', async () => {
    await store.put({ key: 'a/b.txt', body: Buffer.from('hello'), contentType: 'text/plain' });
    await store.put({ key: 'a/c.txt', body: Readable.from(['wor', 'ld']), contentType: 'text/plain' });
    expect(await text(await store.get('a/b.txt'))).toBe('hello');
    expect(await text(await store.get('a/c.txt'))).toBe('world');
    await expect(store.get('a/missing.txt')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('signs URLs that verify until they expire and not after tampering', async () => {
    const { url, expiresAt } = await store.sign('tenants/t1/x y.csv', 30);
    const parsed = new URL(url);
    expect(parsed.pathname).toBe('/v1/files/tenants/t1/x%20y.csv');
    const expires = parsed.searchParams.get('expires') ?? undefined;
    const signature = parsed.searchParams.get('signature') ?? undefined;
    expect(Number(expires) * 1000).toBe(expiresAt.getTime());
    expect(store.verify('tenants/t1/x y.csv', expires, signature)).toBeUndefined();
    expect(store.verify('tenants/t2/x y.csv', expires, signature)).toMatch(/signature does not match/);
    expect(store.verify('tenants/t1/x y.csv', String(Number(expires) + 1), signature)).toMatch(/signature does not match/);
    expect(store.verify('tenants/t1/x y.csv', expires, signature, expiresAt.getTime() + 1001)).toMatch(/expired/);
    expect(store.verify('tenants/t1/x y.csv', undefined, signature)).toMatch(/no valid expires/);
  });

  it('refuses keys that climb out of the root', async () => {
    await expect(store.put({ key: '../evil', body: Buffer.from(''), contentType: 'text/plain' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(store.get('a/../../etc/passwd')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});

describe('fileKey and contentTypeOf', () => {
  it('builds the DESIGN.md key layout and rejects traversal', () => {
    expect(fileKey({ tenantId: 't', runId: 'r', nodeId: 'n', attempt: 2, path: 'out/report.csv' })).toBe('tenants/t/runs/r/nodes/n/2/out/report.csv');
    expect(() => fileKey({ tenantId: 't', runId: 'r', nodeId: 'n', attempt: 1, path: '../x' })).toThrow(/stay inside/);
    expect(() => fileKey({ tenantId: 't', runId: 'r', nodeId: 'n', attempt: 1, path: '/etc/x' })).toThrow(/relative/);
  });

  it('derives content types from file names', () => {
    expect(contentTypeOf('a.csv')).toBe('text/csv');
    expect(contentTypeOf('a.png')).toBe('image/png');
    expect(contentTypeOf('noext')).toBe('application/octet-stream');
  });
});
