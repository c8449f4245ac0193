import { z } from 'zod';
import { LocalDiskStore, S3Store, checkStorageConfig, createObjectStore, storageConfigShape } from './index';

const schema = z.object({ ...storageConfigShape }).superRefine(checkStorageConfig);
const issuesOf = (env: Record<string, string>) => (schema.safeParse(env).error?.issues ?? []).map((i) => `${i.path.join('.')}: ${i.message}`);

describe('storageConfigShape and createObjectStore', () => {
  it('defaults to the local store, which needs FILE_URL_SECRET', () => {
    const config = schema.parse({ FILE_URL_SECRET: 'x'.repeat(16) });
    expect(config).toMatchObject({ STORAGE: 'local', FILE_URL_TTL_SECONDS: 3600, S3_REGION: 'us-east-1', S3_FORCE_PATH_STYLE: false });
    expect(config.STORAGE_DIR).toMatch(/\.cache\/podflow\/files$/);
    expect(createObjectStore(config)).toBeInstanceOf(LocalDiskStore);
    expect(issuesOf({})).toEqual([expect.stringMatching(/^FILE_URL_SECRET: .*at least 16 characters with STORAGE=local/)]);
  });

  it('builds an S3 store without FILE_URL_SECRET, treating empty values as unset', () => {
    const config = schema.parse({ STORAGE: 's3', S3_BUCKET: 'files', S3_ENDPOINT: 'http://minio:9000', S3_PUBLIC_ENDPOINT: '', S3_FORCE_PATH_STYLE: 'true', FILE_URL_SECRET: '' });
    expect(config).toMatchObject({ S3_FORCE_PATH_STYLE: true, S3_PUBLIC_ENDPOINT: undefined, FILE_URL_SECRET: undefined });
    expect(createObjectStore(config)).toBeInstanceOf(S3Store);
  });

  it('stops a bad storage environment with messages that say what to set', () => {
    expect(issuesOf({ STORAGE: 's3' })).toEqual([expect.stringMatching(/^S3_BUCKET: S3_BUCKET is required with STORAGE=s3/)]);
    expect(issuesOf({ STORAGE: 's3', S3_BUCKET: 'b', FILE_URL_TTL_SECONDS: String(8 * 24 * 3600) })).toEqual([expect.stringMatching(/^FILE_URL_TTL_SECONDS: .*7 days/)]);
    expect(issuesOf({ STORAGE: 'gcs' })).toContainEqual(expect.stringMatching(/^STORAGE: STORAGE must be "local" or "s3"/));
    expect(issuesOf({ STORAGE: 's3', S3_BUCKET: 'b', S3_ENDPOINT: 'minio:9000' })).toEqual([expect.stringMatching(/^S3_ENDPOINT: S3_ENDPOINT must be an http\(s\) URL/)]);
    expect(issuesOf({ STORAGE: 's3', S3_BUCKET: 'b', S3_FORCE_PATH_STYLE: 'yes' })).toEqual([expect.stringMatching(/^S3_FORCE_PATH_STYLE: .*"true" or "false"/)]);
  });

  it('refuses to build a store from a configuration that skipped the checks', () => {
    const unchecked = z.object({ ...storageConfigShape }).parse({ STORAGE: 's3' });
    expect(() => createObjectStore(unchecked)).toThrow(/invalid storage configuration: S3_BUCKET is required/);
  });
});
