import { PodflowError } from '@podflow/protocol';

/** Where a failing request went, so every message names it. */
export interface S3Target {
  bucket: string;
  /** The endpoint URL, or `AWS S3 (<region>)` when none is configured. */
  endpoint: string;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);
const AUTH_NAMES = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'AllAccessDisabled']);

interface SdkLikeError {
  name?: string;
  code?: string;
  message?: string;
  errors?: unknown[];
  $metadata?: { httpStatusCode?: number };
}

/**
 * The one place that turns AWS SDK failures into PodflowErrors whose message says what failed,
 * where (bucket, endpoint) and what to check. `NoSuchKey` becomes NOT_FOUND; everything else is
 * an infrastructure fault (INTERNAL): the worker lets BullMQ retry the job.
 */
export function s3Error(error: unknown, target: S3Target, action: string): PodflowError {
  if (error instanceof PodflowError) return error;
  const e = (error ?? {}) as SdkLikeError;
  const name = e.name ?? '';
  const status = e.$metadata?.httpStatusCode;
  const where = `bucket "${target.bucket}" at ${target.endpoint}`;
  const details = { bucket: target.bucket, endpoint: target.endpoint, ...(name ? { s3Error: name } : {}), ...(status ? { httpStatus: status } : {}) };
  const message = e.message?.replace(/^AWS SDK error wrapper for (Error: )?/, '');
  const reason = message ? `: ${message}` : '';
  if (name === 'NoSuchKey' || name === 'NotFound') {
    return new PodflowError('NOT_FOUND', `${action} failed: no such object in ${where}`, details);
  }
  if (name === 'NoSuchBucket') {
    return new PodflowError('INTERNAL', `${action} failed: ${where} does not exist; create the bucket or fix S3_BUCKET/S3_ENDPOINT`, details);
  }
  if (AUTH_NAMES.has(name) || status === 403) {
    return new PodflowError(
      'INTERNAL',
      `${action} failed: access to ${where} was denied (${name || 'HTTP 403'}); check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile or IRSA role), that they belong to this endpoint, and that the bucket policy allows s3:PutObject and s3:GetObject`,
      details,
    );
  }
  if (name === 'CredentialsProviderError') {
    return new PodflowError(
      'INTERNAL',
      `${action} failed: no AWS credentials found for ${where}; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a web identity (IRSA)${reason}`,
      details,
    );
  }
  if (isNetworkError(e)) {
    return new PodflowError(
      'INTERNAL',
      `${action} failed: cannot reach ${where}${reason || ` (${networkCode(e)})`}; check S3_ENDPOINT, DNS and that the server is up and reachable from here`,
      details,
    );
  }
  return new PodflowError('INTERNAL', `${action} failed against ${where}${reason}${name ? ` (${name})` : ''}`, details);
}

function networkCode(e: SdkLikeError): string | undefined {
  if (e.code && NETWORK_CODES.has(e.code)) return e.code;
  // Node's connect() with several addresses fails with an AggregateError of per-address errors.
  for (const inner of e.errors ?? []) {
    const code = (inner as SdkLikeError | undefined)?.code;
    if (code && NETWORK_CODES.has(code)) return code;
  }
  // The SDK's retry layer rewraps errors from another realm (Jest's sandbox, some bundlers) as
  // "AWS SDK error wrapper for Error: connect ECONNREFUSED ...", keeping only the message.
  return [...NETWORK_CODES].find((code) => e.message?.includes(code));
}

function isNetworkError(e: SdkLikeError): boolean {
  return networkCode(e) !== undefined || e.name === 'TimeoutError';
}
