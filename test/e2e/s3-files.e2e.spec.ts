// Files a node writes, end to end through S3: worker upload to the test MinIO, pre-signed URLs
// in the run result, expiry, and re-signing by the coordinator.
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { RunView } from '@podflow/client';
import { createHash } from 'node:crypto';
import { TENANT, runToEnd, startStack, testS3, type Stack } from '../support/stack';

type FileElement = NonNullable<RunView['nodes'][string]['files']>['elements'][number] & { key: string };

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const WORKFLOW = {
  id: 's3-files',
  nodes: [
    {
      id: 'export',
      language: 'python',
      code: [
        'import csv, hashlib, os',
        '',
        'def main(args):',
        '    with open("report.csv", "w", newline="") as f:',
        '        writer = csv.writer(f)',
        '        writer.writerow(["id", "label"])',
        '        for i in range(200):',
        '            writer.writerow([i, f"row {i}"])',
        '    data = os.urandom(256 * 1024)',
        '    os.makedirs("out", exist_ok=True)',
        '    with open("out/blob.bin", "wb") as f:',
        '        f.write(data)',
        '    return {"blob_sha256": hashlib.sha256(data).hexdigest()}',
        '',
      ].join('\n'),
    },
  ],
};

async function download(url: string): Promise<{ status: number; contentType: string | null; body: Buffer }> {
  const response = await fetch(url);
  return { status: response.status, contentType: response.headers.get('content-type'), body: Buffer.from(await response.arrayBuffer()) };
}

/** When the workflow has run to success on `stack`: the run and its node's file elements. */
async function runExport(stack: Stack): Promise<{ run: RunView; elements: FileElement[] }> {
  const run = await runToEnd(stack, WORKFLOW);
  expect({ status: run.status, error: run.error, logs: run.status === 'succeeded' ? '' : stack.logs() }).toEqual({ status: 'succeeded', error: undefined, logs: '' });
  return { run, elements: (run.nodes.export!.files?.elements ?? []) as FileElement[] };
}

describe('node files in S3', () => {
  describe('with the default URL TTL', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ workers: 1, storage: 's3' });
    });
    afterAll(() => stack?.stop());

    it('uploads every file under the run key layout and hands out URLs that download byte for byte', async () => {
      const { run, elements } = await runExport(stack);
      const node = run.nodes.export!;
      const prefix = `tenants/${TENANT}/runs/${run.id}/nodes/export/${node.attempts}/`;
      expect(elements.map((e) => ({ name: e.name, path: e.path, key: e.key, content_type: e.content_type }))).toEqual([
        { name: 'report.csv', path: 'report.csv', key: `${prefix}report.csv`, content_type: 'text/csv' },
        { name: 'blob.bin', path: 'out/blob.bin', key: `${prefix}out/blob.bin`, content_type: 'application/octet-stream' },
      ]);
      const blob = elements[1]!;
      expect(blob.size).toBe(256 * 1024);
      expect(blob.sha256).toBe(node.output!.blob_sha256);

      const s3 = testS3();
      const raw = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true });
      try {
        for (const element of elements) {
          expect(new URL(element.download_url).origin).toBe(new URL(s3.endpoint).origin);
          expect(Date.parse(element.expires_at)).toBeGreaterThan(Date.now() + 3000_000);
          const got = await download(element.download_url);
          expect({ status: got.status, contentType: got.contentType, size: got.body.length, sha256: sha256(got.body) }).toEqual({
            status: 200,
            contentType: element.content_type,
            size: element.size,
            sha256: element.sha256,
          });
          // The bucket holds the object under the stack's key prefix, with its sha256 as metadata.
          const head = await raw.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${stack.s3Prefix}/${element.key}` }));
          expect(head.Metadata?.sha256).toBe(element.sha256);
        }
      } finally {
        raw.destroy();
      }
    });

    it('does not serve files itself: /v1/files answers 404 pointing at the S3 URLs', async () => {
      const response = await fetch(`${stack.url}/v1/files/tenants/${TENANT}/anything.csv?expires=1&signature=00`);
      expect(response.status).toBe(404);
      expect(await response.json()).toMatchObject({ error: { code: 'NOT_FOUND', message: expect.stringMatching(/pre-signed S3 URLs/) } });
    });
  });

  describe('with FILE_URL_TTL_SECONDS=4', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ workers: 1, storage: 's3', env: { FILE_URL_TTL_SECONDS: '4' } });
    });
    afterAll(() => stack?.stop());

    it('hands out URLs that stop working after 4 s, and files/sign gives fresh ones that work, for at most FILE_URL_TTL_SECONDS', async () => {
      const { run, elements } = await runExport(stack);
      expect(elements).toHaveLength(2);
      const expiresAt = Math.max(...elements.map((e) => Date.parse(e.expires_at)));
      expect(expiresAt).toBeLessThanOrEqual(Date.now() + 4000);
      await sleep(Math.max(0, expiresAt - Date.now()) + 1500);
      for (const element of elements) {
        const expired = await download(element.download_url);
        expect({ status: expired.status, body: expired.body.toString() }).toEqual({ status: 403, body: expect.stringMatching(/expired/i) });
      }

      // The operator's TTL is the most a caller gets (issue 10, item 9).
      await expect(stack.client.request('POST', `/v1/runs/${run.id}/nodes/export/files/sign`, { ttlSeconds: 60 })).rejects.toMatchObject({
        code: 'BAD_REQUEST',
        message: expect.stringContaining('at most 4 (FILE_URL_TTL_SECONDS)'),
      });
      // Without ttlSeconds the store's own TTL (4 s) applies.
      const fresh = await stack.client.request<{ elements: FileElement[] }>('POST', `/v1/runs/${run.id}/nodes/export/files/sign`, {});
      expect(fresh.elements.map((e) => e.key)).toEqual(elements.map((e) => e.key));
      for (const [i, element] of fresh.elements.entries()) {
        expect(element.download_url).not.toBe(elements[i]!.download_url);
        expect(Date.parse(element.expires_at)).toBeLessThanOrEqual(Date.now() + 4000);
        const got = await download(element.download_url);
        expect({ status: got.status, sha256: sha256(got.body) }).toEqual({ status: 200, sha256: element.sha256 });
      }
    });
  });
});
