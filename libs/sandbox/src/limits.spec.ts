import { DEFAULT_RUNNER_LIMITS } from '@podflow/protocol';
import { mergeRunnerLimits, parseMemoryQuantity } from './limits';

const MIB = 1024 * 1024;

describe('mergeRunnerLimits', () => {
  it('layers protocol defaults, driver options and the request, ignoring undefined values', () => {
    expect(mergeRunnerLimits(undefined, undefined)).toEqual(DEFAULT_RUNNER_LIMITS);
    expect(mergeRunnerLimits({ maxFiles: 10, maxLogBytes: 1000 }, { maxFiles: 5, maxLogBytes: undefined })).toEqual({
      ...DEFAULT_RUNNER_LIMITS,
      maxFiles: 5,
      maxLogBytes: 1000,
    });
  });

});

describe('parseMemoryQuantity', () => {
  it.each([
    ['256Mi', 256 * MIB],
    ['1Gi', 1024 * MIB],
    ['512Ki', 512 * 1024],
    ['1G', 1e9],
    ['500M', 5e8],
    ['134217728', 134217728],
    ['1.5Gi', 1536 * MIB],
  ])('reads %s', (quantity, bytes) => {
    expect(parseMemoryQuantity(quantity)).toBe(bytes);
  });

  it.each(['', 'lots', '-1Gi', '0', '1GB', '1 Gi'])('rejects %j', (quantity) => {
    expect(parseMemoryQuantity(quantity)).toBeUndefined();
  });
});
