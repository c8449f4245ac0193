import { PodflowError } from '@podflow/protocol';

/** S3 error names that refuse the object itself (its key), not the request's circumstances. */
const REFUSED_S3_ERRORS = new Set(['KeyTooLongError', 'InvalidObjectName', 'XMinioInvalidObjectName', 'XMinioInvalidObjectNameError']);

/** File-system errors of the local-disk store that a name causes (too long, not encodable). */
const REFUSED_ERRNO_CODES = new Set(['ENAMETOOLONG', 'EILSEQ']);

/**
 * Whether a failed `put` or `sign` refused the object for what it is (its key or name), so that
 * trying again can never succeed: the caller reports that object as the node's fault
 * (OUTPUT_INVALID) instead of retrying. Every other failure (unreachable, denied, full, slow) is
 * about the store and may pass on a later try.
 */
export function isObjectRefused(error: unknown): boolean {
  if (error instanceof PodflowError) {
    if (error.code === 'OUTPUT_INVALID' || error.code === 'BAD_REQUEST') return true;
    return REFUSED_S3_ERRORS.has(String(error.details?.s3Error ?? ''));
  }
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && REFUSED_ERRNO_CODES.has(code);
}
