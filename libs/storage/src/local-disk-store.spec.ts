import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { LocalDiskStore, contentTypeOf, downloadDisposition, fileKey, isObjectRefused } from './index';

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

  it('stores a 255-byte file name: the temporary name never lengthens it', async () => {
    const name = 'n'.repeat(250);
    const key = fileKey({ tenantId: 't', runId: 'r', nodeId: 'n', attempt: 1, path: `out/${name}` });
    await store.put({ key, body: Buffer.from('long'), contentType: 'text/plain' });
    await store.put({ key: `a/${'é'.repeat(127)}x`, body: Readable.from(['255 bytes']), contentType: 'text/plain' });
    expect(await text(await store.get(key))).toBe('long');
    expect(await text(await store.get(`a/${'é'.repeat(127)}x`))).toBe('255 bytes');
    expect(await readdir(join(root, '.partial'))).toEqual([]);
  });

  it('refuses a name the file system cannot hold as OUTPUT_INVALID, leaving nothing behind', async () => {
    const put = store.put({ key: `a/${'n'.repeat(256)}`, body: Buffer.from('x'), contentType: 'text/plain' });
    await expect(put).rejects.toMatchObject({ code: 'OUTPUT_INVALID', message: expect.stringMatching(/file system refused a name in it \(ENAMETOOLONG\); shorten the file name/) });
    expect(isObjectRefused(await put.catch((error: unknown) => error))).toBe(true);
    expect(await readdir(join(root, '.partial'))).toEqual([]);
  });

  it('cleans up the temporary file when the body fails mid-stream', async () => {
    const body = new Readable({
      read() {
        this.destroy(new Error('source broke'));
      },
    });
    await expect(store.put({ key: 'a/b.txt', body, contentType: 'text/plain' })).rejects.toThrow('source broke');
    expect(await readdir(join(root, '.partial'))).toEqual([]);
    await expect(store.get('a/b.txt')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('refuses keys that climb out of the root', async () => {
    await expect(store.put({ key: '../evil', body: Buffer.from(''), contentType: 'text/plain' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(store.get('a/../../etc/passwd')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});

describe('fileKey and contentTypeOf', () => {
  it('builds the DESIGN.md key layout and refuses paths the store cannot hold, never rewriting them', () => {
    expect(fileKey({ tenantId: 't', runId: 'r', nodeId: 'n', attempt: 2, path: 'out/report.csv' })).toBe('tenants/t/runs/r/nodes/n/2/out/report.csv');
    const keyOf = (path: string) => () => fileKey({ tenantId: 't', runId: 'r', nodeId: 'n', attempt: 1, path });
    expect(keyOf('../x')).toThrow(/file "\.\.\/x" under \/home\/user cannot be stored: the path has a "\." or "\.\." segment; file names must be/);
    expect(keyOf('/etc/x')).toThrow(/the path is absolute/);
    // Once normalized to `../evil.txt`; now refused as the name it is.
    expect(keyOf('..\\evil.txt')).toThrow(expect.objectContaining({ code: 'OUTPUT_INVALID', details: { path: '..\\evil.txt', reason: expect.stringMatching(/backslash/) } }));
    expect(keyOf('line\nbreak')).toThrow(/control character U\+000A/);
    expect(keyOf('x'.repeat(256))).toThrow(/longer than 255 bytes/);
  });

  it('serves every download as an attachment named after the file, the name in ASCII and exactly', () => {
    expect(downloadDisposition('tenants/t/runs/r/nodes/n/1/x.html')).toBe(`attachment; filename="x.html"; filename*=UTF-8''x.html`);
    expect(downloadDisposition('tenants/t/runs/r/nodes/n/1/out/rapport été "q" 100%.csv')).toBe(
      `attachment; filename="rapport _t_ _q_ 100_.csv"; filename*=UTF-8''rapport%20%C3%A9t%C3%A9%20%22q%22%20100%25.csv`,
    );
    expect(downloadDisposition("a/it's (1)*.txt")).toBe(`attachment; filename="it's (1)*.txt"; filename*=UTF-8''it%27s%20%281%29%2A.txt`);
  });

  it('derives content types from file names', () => {
    expect(contentTypeOf('a.csv')).toBe('text/csv');
    expect(contentTypeOf('a.png')).toBe('image/png');
    expect(contentTypeOf('noext')).toBe('application/octet-stream');
  });
});
