import { PodflowError } from '@podflow/protocol';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { LocalDiskStore } from './local-disk-store';
import { MAX_S3_URL_TTL_SECONDS, S3Store } from './s3-store';

/** Helm and compose files often pass `""` for an unset value; treat it as unset. */
const unsetIfEmpty = (value: unknown) => (value === '' ? undefined : value);
const optionalString = z.preprocess(unsetIfEmpty, z.string().min(1).optional());
const optionalUrl = (name: string) => {
  const message = `${name} must be an http(s) URL, e.g. http://minio:9000`;
  return z.preprocess(unsetIfEmpty, z.string().url({ message }).regex(/^https?:\/\//i, { message }).optional());
};

/**
 * The storage settings every service shares, as a zod shape to spread into the service's own
 * schema: `z.object({ ...storageConfigShape, ... }).superRefine(checkStorageConfig)`. The library
 * reads no environment itself; services parse theirs and pass the result to `createObjectStore`.
 */
export const storageConfigShape = {
  /** `local`: files on disk, served by the coordinator. `s3`: any S3-compatible bucket. */
  STORAGE: z.enum(['local', 's3'], { message: 'STORAGE must be "local" or "s3"' }).default('local'),
  STORAGE_DIR: z.string().default(join(homedir(), '.cache', 'podflow', 'files')),
  PUBLIC_URL: z.string().url().default('http://localhost:8080'),
  /** HMAC key of local-disk file URLs; required when STORAGE=local (see checkStorageConfig). */
  FILE_URL_SECRET: optionalString,
  FILE_URL_TTL_SECONDS: z.coerce.number().int().min(1).default(3600),
  S3_BUCKET: optionalString,
  S3_ENDPOINT: optionalUrl('S3_ENDPOINT'),
  S3_PUBLIC_ENDPOINT: optionalUrl('S3_PUBLIC_ENDPOINT'),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_FORCE_PATH_STYLE: z.enum(['true', 'false'], { message: 'S3_FORCE_PATH_STYLE must be "true" or "false"' }).default('false').transform((v) => v === 'true'),
  S3_KEY_PREFIX: optionalString,
};

export type StorageConfig = z.output<z.ZodObject<typeof storageConfigShape>>;

/** The checks that span several fields; for `superRefine` on a service's config schema. */
export function checkStorageConfig(config: StorageConfig, ctx: z.RefinementCtx): void {
  for (const [path, message] of storageConfigIssues(config)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [path], message });
}

function storageConfigIssues(config: StorageConfig): Array<[keyof StorageConfig, string]> {
  const issues: Array<[keyof StorageConfig, string]> = [];
  if (config.STORAGE === 'local' && (config.FILE_URL_SECRET ?? '').length < 16) {
    issues.push(['FILE_URL_SECRET', 'FILE_URL_SECRET must be at least 16 characters with STORAGE=local (the same value on the coordinator and every worker)']);
  }
  if (config.STORAGE === 's3') {
    if (!config.S3_BUCKET) issues.push(['S3_BUCKET', 'S3_BUCKET is required with STORAGE=s3 (the bucket must already exist)']);
    if (config.FILE_URL_TTL_SECONDS > MAX_S3_URL_TTL_SECONDS) {
      issues.push(['FILE_URL_TTL_SECONDS', `FILE_URL_TTL_SECONDS must be at most ${MAX_S3_URL_TTL_SECONDS} (7 days) with STORAGE=s3: S3 refuses longer pre-signed URLs`]);
    }
  }
  return issues;
}

/**
 * The store the configuration asks for. Credentials for S3 are not part of the configuration:
 * the AWS SDK default chain finds them (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
 * web identity/IRSA, instance metadata).
 */
export function createObjectStore(config: StorageConfig): LocalDiskStore | S3Store {
  const issues = storageConfigIssues(config);
  if (issues.length > 0) throw new PodflowError('BAD_REQUEST', `invalid storage configuration: ${issues.map(([, message]) => message).join('; ')}`);
  switch (config.STORAGE) {
    case 'local':
      return new LocalDiskStore({ root: config.STORAGE_DIR, publicBaseUrl: config.PUBLIC_URL, secret: config.FILE_URL_SECRET!, defaultTtlSeconds: config.FILE_URL_TTL_SECONDS });
    case 's3':
      return new S3Store({
        bucket: config.S3_BUCKET!,
        ...(config.S3_ENDPOINT ? { endpoint: config.S3_ENDPOINT } : {}),
        ...(config.S3_PUBLIC_ENDPOINT ? { publicEndpoint: config.S3_PUBLIC_ENDPOINT } : {}),
        region: config.S3_REGION,
        forcePathStyle: config.S3_FORCE_PATH_STYLE,
        defaultTtlSeconds: config.FILE_URL_TTL_SECONDS,
        ...(config.S3_KEY_PREFIX ? { keyPrefix: config.S3_KEY_PREFIX } : {}),
      });
  }
}
