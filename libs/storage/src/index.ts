/**
 * @podflow/storage: where node files live, behind one `ObjectStore` interface.
 *
 * ```ts
 * const store = new LocalDiskStore({ root, publicBaseUrl: 'http://localhost:8080', secret, defaultTtlSeconds: 3600 });
 * await store.put({ key: fileKey({ tenantId, runId, nodeId, attempt, path: 'report.csv' }), body, contentType: contentTypeOf('report.csv') });
 * const { url, expiresAt } = await store.sign(key);
 * ```
 */
export { LocalDiskStore } from './local-disk-store';
export type { LocalDiskStoreOptions } from './local-disk-store';
export type { ObjectStore, PutObjectInput, SignedUrl } from './object-store';
export { assertSafeKey, contentTypeOf, fileKey, safeRelativePath } from './keys';
export type { FileKeyParts } from './keys';
