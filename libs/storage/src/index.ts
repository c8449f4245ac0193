/**
 * @podflow/storage: where node files live, behind one `ObjectStore` interface.
 *
 * ```ts
 * const store = new LocalDiskStore({ root, publicBaseUrl: 'http://localhost:8080', secret, defaultTtlSeconds: 3600 });
 * await store.put({ key: fileKey({ tenantId, runId, nodeId, attempt, path: 'report.csv' }), body, contentType: contentTypeOf('report.csv') });
 * const { url, expiresAt } = await store.sign(key);
 * ```
 *
 * Services pick the store from their parsed configuration (STORAGE=local|s3):
 *
 * ```ts
 * const schema = z.object({ ...storageConfigShape, PORT: ... }).superRefine(checkStorageConfig);
 * const store = createObjectStore(schema.parse(process.env));
 * ```
 *
 * Large JSON payloads (node outputs, job args) go through `PayloadStore`, on top of any store:
 *
 * ```ts
 * const payloads = new PayloadStore(store, { inlineMaxBytes: 256 * 1024 });
 * const ref = await payloads.offload(output, (sha256) => nodePayloadKey({ tenantId, runId, nodeId, attempt, kind: 'output', sha256 }));
 * const same = ref ? await payloads.load(ref) : output; // checked against ref.sha256
 * ```
 */
export { LocalDiskStore, MAX_URL_CLOCK_SKEW_SECONDS } from './local-disk-store';
export type { LocalDiskStoreOptions } from './local-disk-store';
export { MAX_S3_URL_TTL_SECONDS, S3Store } from './s3-store';
export type { S3StoreOptions } from './s3-store';
export { checkStorageConfig, createObjectStore, storageConfigShape } from './store-config';
export type { StorageConfig } from './store-config';
export type { ObjectStore, PutObjectInput, SignedUrl } from './object-store';
export { assertSafeKey, contentTypeOf, downloadDisposition, fileKey, nodePayloadKey, runOutputsKey, storableFilePath } from './keys';
export { isObjectRefused } from './store-errors';
export type { FileKeyParts, NodePayloadKeyParts, NodePayloadKind } from './keys';
export { PayloadStore, PayloadUnavailableError } from './payloads';
export type { PayloadProblem, PayloadStoreOptions } from './payloads';
