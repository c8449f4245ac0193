import { MAX_JSON_DEPTH, findTooDeep } from './json-depth';

/** `levels` nested arrays (or objects under key `k`) around a scalar. */
function nested(levels: number, kind: 'array' | 'object'): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = kind === 'array' ? [value] : { k: value };
  return value;
}

describe('findTooDeep', () => {
  it('accepts values up to the limit and names the first path past it', () => {
    expect(findTooDeep(nested(MAX_JSON_DEPTH, 'object'), MAX_JSON_DEPTH)).toBeUndefined();
    expect(findTooDeep(nested(MAX_JSON_DEPTH + 1, 'object'), MAX_JSON_DEPTH, 'inputs')).toBe(`inputs${'.k'.repeat(MAX_JSON_DEPTH)}`);
    expect(findTooDeep({ a: [1, { 'b c': [[]] }] }, 3, 'args')).toBe('args.a[1]["b c"]');
    expect(findTooDeep({ a: [1, { 'b c': [[]] }] }, 4, 'args')).toBe('args.a[1]["b c"][0]');
    expect(findTooDeep({ a: [1, { 'b c': [[]] }] }, 5)).toBeUndefined();
    expect(findTooDeep('text', 0)).toBeUndefined();
  });

  it('handles nesting far deeper than the call stack', () => {
    expect(findTooDeep(nested(200_000, 'array'), MAX_JSON_DEPTH, 'x')).toBe(`x${'[0]'.repeat(MAX_JSON_DEPTH)}`);
  });

  it('treats __proto__ as an ordinary key', () => {
    expect(findTooDeep(JSON.parse('{"__proto__": {"a": {}}}'), 2, 'in')).toBe('in.__proto__.a');
  });
});
