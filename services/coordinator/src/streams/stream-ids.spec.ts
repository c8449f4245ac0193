import { compareStreamIds, parseLastEventId } from './stream-ids';

describe('parseLastEventId', () => {
  it('accepts ids this API sends, $, 0 and no header', () => {
    expect(parseLastEventId(undefined)).toBe('0-0');
    expect(parseLastEventId('  ')).toBe('0-0');
    expect(parseLastEventId('0')).toBe('0-0');
    expect(parseLastEventId('$')).toBe('$');
    expect(parseLastEventId('1700000000000-3')).toBe('1700000000000-3');
    expect(parseLastEventId('18446744073709551615-18446744073709551615')).toBe('18446744073709551615-18446744073709551615');
  });

  it.each(['abc', '12', '-1-0', '1-2-3', '1700000000000-x', `${'9'.repeat(21)}-0`, '$$', '18446744073709551616-0', '0-18446744073709551616', '99999999999999999999-0', '1-99999999999999999999'])('refuses %p with BAD_REQUEST', (header) => {
    expect(() => parseLastEventId(header)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST', message: expect.stringContaining('is not an event id') }));
  });
});

describe('compareStreamIds', () => {
  it('orders by time, then sequence, numerically', () => {
    expect(compareStreamIds('2-0', '10-0')).toBe(-1);
    expect(compareStreamIds('10-2', '10-10')).toBe(-1);
    expect(compareStreamIds('10-10', '10-10')).toBe(0);
    expect(compareStreamIds('99999999999999999999-1', '99999999999999999999-0')).toBe(1);
    expect(compareStreamIds('0-0', '1-0')).toBe(-1);
  });
});
