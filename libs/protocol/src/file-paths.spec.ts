import { FILE_PATH_EXAMPLES, MAX_FILE_NAME_BYTES, MAX_FILE_PATH_BYTES, unstorablePathReason } from './file-paths';

describe('unstorablePathReason', () => {
  it.each(FILE_PATH_EXAMPLES.map((example) => [JSON.stringify(example.path).slice(0, 60), example.path, example.reason] as const))(
    '%s',
    (_label, path, reason) => {
      expect(unstorablePathReason(path)).toBe(reason);
    },
  );

  it('counts UTF-8 bytes, not characters, at the exact limits', () => {
    // 3-byte characters: 85 of them are 255 bytes, one more is over.
    expect(unstorablePathReason('日'.repeat(85))).toBeUndefined();
    expect(unstorablePathReason('日'.repeat(86))).toBe(`a name is longer than ${MAX_FILE_NAME_BYTES} bytes`);
    // An astral character is 4 bytes (2 UTF-16 units), not 6.
    expect(unstorablePathReason(`${'🙂'.repeat(63)}abc`)).toBeUndefined();
    const atLimit = `${'a'.repeat(255)}/${'b'.repeat(MAX_FILE_PATH_BYTES - 258)}/c`;
    expect(unstorablePathReason(atLimit)).toBeUndefined();
    expect(unstorablePathReason(`${atLimit}c`)).toBe(`the path is longer than ${MAX_FILE_PATH_BYTES} bytes`);
  });

  it('treats a well-formed surrogate pair as one character and a lone one as invalid UTF-8', () => {
    expect(unstorablePathReason('\uD83D\uDE42')).toBeUndefined();
    expect(unstorablePathReason('\uD83D')).toBe('the name is not valid UTF-8');
    expect(unstorablePathReason('a\uDE42')).toBe('the name is not valid UTF-8');
  });
});
