import { PodflowError } from '@podflow/protocol';
import { isObjectRefused } from './store-errors';

describe('isObjectRefused', () => {
  it.each([
    ['an unstorable file path', new PodflowError('OUTPUT_INVALID', 'file cannot be stored'), true],
    ['a bad key', new PodflowError('BAD_REQUEST', 'storage key is not a plain relative key'), true],
    ['S3 KeyTooLongError', new PodflowError('INTERNAL', 'put failed', { s3Error: 'KeyTooLongError' }), true],
    ['MinIO invalid object name', new PodflowError('INTERNAL', 'put failed', { s3Error: 'XMinioInvalidObjectName' }), true],
    ['ENAMETOOLONG from the file system', Object.assign(new Error('name too long'), { code: 'ENAMETOOLONG' }), true],
    ['an unreachable S3 endpoint', new PodflowError('INTERNAL', 'cannot reach bucket', { s3Error: 'Error' }), false],
    ['access denied', new PodflowError('INTERNAL', 'access denied', { s3Error: 'AccessDenied', httpStatus: 403 }), false],
    ['a full disk', Object.assign(new Error('no space'), { code: 'ENOSPC' }), false],
    ['a connection reset', Object.assign(new Error('reset'), { code: 'ECONNRESET' }), false],
    ['something that is not an error', 'boom', false],
    ['nothing', undefined, false],
  ])('%s → %s', (_name, error, refused) => {
    expect(isObjectRefused(error)).toBe(refused);
  });
});
