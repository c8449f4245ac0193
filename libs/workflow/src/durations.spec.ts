import { durationToMs, formatDuration, parseDuration } from './durations';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['20s', 20_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1.5s', 1_500],
    ['30', 30_000],
    [2, 2_000],
    [0.25, 250],
  ] as const)('%p → %p ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(['', '20 seconds', '5x', '-1s', 'ms', '1d'])('rejects %p with a hint', (input) => {
    expect(() => parseDuration(input)).toThrow(/is not a valid duration: use a number of seconds or a string like 500ms/);
  });

  it('rejects negative and non-finite numbers and other types', () => {
    expect(() => parseDuration(-1)).toThrow(RangeError);
    expect(() => parseDuration(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(durationToMs(true)).toEqual({ error: 'must be a duration, got boolean: use a number of seconds or a string like 500ms, 20s, 5m, 1h or 1m30s' });
  });
});

describe('formatDuration', () => {
  it.each([
    [1_500, '1500ms'],
    [20_000, '20s'],
    [300_000, '5m'],
    [7_200_000, '2h'],
    [0, '0s'],
  ])('%p → %p', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
