import type { ExecJob, FileElement } from '@podflow/protocol';
import type { CollectedFile } from '@podflow/sandbox';
import { contentTypeOf, fileKey, type ObjectStore } from '@podflow/storage';
import { posix } from 'node:path';
import { DEFAULT_STORE_RETRY, withStoreRetries, type StoreRetryPolicy } from './store-retry';

/**
 * Uploads what a sandbox left under /home/user and returns the node result's `files.elements`.
 * Each put and sign is retried under `retry` (a file's bytes are opened afresh for each try); a
 * file the store refuses (`fileKey`'s OUTPUT_INVALID, a name too long for it) throws at once.
 */
export async function uploadFiles(store: ObjectStore, job: ExecJob, files: CollectedFile[], retry: StoreRetryPolicy = DEFAULT_STORE_RETRY): Promise<FileElement[]> {
  const elements: FileElement[] = [];
  // Sequential on purpose: keeps the written order and bounds open file handles per execution.
  for (const file of files) {
    const key = fileKey({ tenantId: job.tenantId, runId: job.runId, nodeId: job.nodeId, attempt: job.attempt, path: file.path });
    const name = posix.basename(file.path);
    const contentType = contentTypeOf(name);
    await withStoreRetries(() => store.put({ key, body: file.open(), contentType, sha256: file.sha256, size: file.size }), retry);
    const signed = await withStoreRetries(() => store.sign(key), retry);
    elements.push({
      name,
      path: file.path,
      size: file.size,
      content_type: contentType,
      sha256: file.sha256,
      download_url: signed.url,
      expires_at: signed.expiresAt.toISOString(),
      key,
    });
  }
  return elements;
}
