import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalDiskStore, PayloadStore, PayloadUnavailableError, nodePayloadKey, runOutputsKey, type ObjectStore } from './index';

const keyOf = (sha256: string) => nodePayloadKey({ tenantId: 't', runId: 'r', nodeId: 'n', attempt: 1, kind: 'output', sha256 });

describe('PayloadStore', () => {
  let root: string;
  let disk: LocalDiskStore;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'podflow-payloads-'));
    disk = new LocalDiskStore({ root, publicBaseUrl: 'http://localhost:8080', secret: 's3cret-s3cret-s3cret', defaultTtlSeconds: 60 });
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('keeps payloads up to the inline size inline and stores larger ones with their sha256', async () => {
    const payloads = new PayloadStore(disk, { inlineMaxBytes: 16 });
    expect(await payloads.offload({ a: 'x'.repeat(8) }, keyOf)).toBeUndefined(); // {"a":"xxxxxxxx"} is exactly 16 bytes
    const big = { a: 'x'.repeat(9) };
    const ref = await payloads.offload(big, keyOf);
    expect(ref).toEqual({ key: expect.stringMatching(/^tenants\/t\/runs\/r\/nodes\/n\/1\.output\.[0-9a-f]{64}\.json$/), size: 17, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(ref!.key).toContain(ref!.sha256);
    expect(JSON.parse(await readFile(join(root, ...ref!.key.split('/')), 'utf8'))).toEqual(big);
    expect(await new PayloadStore(disk, { inlineMaxBytes: 16 }).load(ref!)).toEqual(big);
  });

  it('says "missing" for an object that is gone and "corrupt" for bytes that do not match', async () => {
    const payloads = new PayloadStore(disk, { inlineMaxBytes: 0 });
    const ref = (await payloads.offload({ rows: [1, 2, 3] }, keyOf))!;
    await expect(payloads.load({ ...ref, key: keyOf('0'.repeat(64)) })).rejects.toMatchObject({ problem: 'missing', message: expect.stringMatching(/is missing/) });
    const path = join(root, ...ref.key.split('/'));
    await writeFile(path, JSON.stringify({ rows: [1, 2, 4] }));
    const error = await payloads.load(ref).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayloadUnavailableError);
    expect(error).toMatchObject({ problem: 'corrupt', message: expect.stringMatching(/sha256 is [0-9a-f]{64}, its reference records/) });
    await writeFile(path, JSON.stringify({ rows: [1, 2, 3, 4] }));
    await expect(payloads.load(ref)).rejects.toMatchObject({ problem: 'corrupt', message: expect.stringMatching(/more than the \d+ bytes/) });
    const list = '[1, 2, 3, 4, 5, 6]';
    await writeFile(path, list);
    const listRef = { ...ref, size: list.length, sha256: createHash('sha256').update(list).digest('hex') };
    await expect(payloads.load(listRef)).rejects.toMatchObject({ problem: 'corrupt', message: expect.stringMatching(/not a JSON object/) });
  });

  it('serves repeated loads from its LRU cache within its byte budget, one read per key at a time', async () => {
    let reads = 0;
    const counting: ObjectStore = { put: (i) => disk.put(i), sign: (k, t) => disk.sign(k, t), get: (k) => ((reads += 1), disk.get(k)) };
    const writer = new PayloadStore(disk, { inlineMaxBytes: 0 });
    const a = (await writer.offload({ v: 'a'.repeat(100) }, keyOf))!;
    const b = (await writer.offload({ v: 'b'.repeat(100) }, keyOf))!;
    const payloads = new PayloadStore(counting, { inlineMaxBytes: 0, cacheMaxBytes: 150 });
    await Promise.all([payloads.load(a), payloads.load(a)]);
    await payloads.load(a);
    expect(reads).toBe(1);
    await payloads.load(b); // evicts a: both do not fit in 150 bytes
    await payloads.load(b);
    expect(reads).toBe(2);
    await payloads.load(a);
    expect(reads).toBe(3);
  });

  it('builds payload keys beside the files prefix, never inside it', () => {
    const sha = 'ab'.repeat(32);
    expect(nodePayloadKey({ tenantId: 't', runId: 'r', nodeId: 'n', attempt: 2, kind: 'args', sha256: sha })).toBe(`tenants/t/runs/r/nodes/n/2.args.${sha}.json`);
    expect(runOutputsKey({ tenantId: 't', runId: 'r', sha256: sha })).toBe(`tenants/t/runs/r/outputs.${sha}.json`);
    expect(() => runOutputsKey({ tenantId: 't', runId: 'r', sha256: '../x' })).toThrow(/not a hex sha256/);
  });
});
