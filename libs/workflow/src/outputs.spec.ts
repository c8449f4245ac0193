import { checkInputTypes, checkOutput, jsonTypeOf } from './outputs';

describe('checkOutput', () => {
  it('passes anything without declared outputs, but only JSON objects', () => {
    expect(checkOutput('a', undefined, { x: 1 })).toEqual({ warnings: [] });
    expect(checkOutput('a', undefined, 'text').error).toMatchObject({ code: 'OUTPUT_INVALID', message: 'node "a" returned a value of type string; main must return a JSON object' });
  });

  it('checks each declared type', () => {
    const declared = { s: 'string', n: 'number', i: 'integer', b: 'boolean', o: 'object', a: 'array', z: 'null', any: 'any' } as const;
    expect(checkOutput('a', declared, { s: 'x', n: 1.5, i: 2, b: false, o: {}, a: [], z: null, any: [1] })).toEqual({ warnings: [] });
    const bad = checkOutput('a', declared, { s: 1, n: 'x', i: 1.5, b: 0, o: [], a: {}, z: 0 });
    expect(bad.error?.details).toEqual({
      problems: [
        'output key "s" is integer, declared as string',
        'output key "n" is string, declared as number',
        'output key "i" is number, declared as integer',
        'output key "b" is integer, declared as boolean',
        'output key "o" is array, declared as object',
        'output key "a" is object, declared as array',
        'output key "z" is integer, declared as null',
        'output key "any" is missing (declared as any)',
      ],
    });
  });

  it('keeps undeclared keys and warns about each', () => {
    expect(checkOutput('a', { x: 'any' }, { x: 1, y: 2, z: 3 })).toEqual({
      warnings: ['output key "y" is not declared in outputs', 'output key "z" is not declared in outputs'],
    });
  });

  it('names JSON types', () => {
    expect([null, [], 1, 1.5, 'x', true, {}].map(jsonTypeOf)).toEqual(['null', 'array', 'integer', 'number', 'string', 'boolean', 'object']);
  });
});

describe('checkInputTypes with JSON Schemas', () => {
  const row = { type: 'object', required: ['id', 'price'], properties: { id: { type: 'string', pattern: '^[a-z]+$' }, price: { type: 'number', minimum: 0 } } };

  it('passes a value that matches', () => {
    expect(() => checkInputTypes('n', { row, count: 'integer' }, { row: { id: 'abc', price: 2 }, count: 3 })).not.toThrow();
  });

  it.each([
    ['a wrong type inside', { id: 'abc', price: '2' }, 'input "row" ({"id":"abc","price":"2"}) does not match its JSON Schema at /price: must be number ({"type":"number"})'],
    ['a pattern (run on RE2)', { id: 'ABC', price: 2 }, 'input "row" ({"id":"ABC","price":2}) does not match its JSON Schema at /id: must match pattern "^[a-z]+$" ({"pattern":"^[a-z]+$"})'],
    ['a missing property', { id: 'abc' }, 'input "row" ({"id":"abc"}) does not match its JSON Schema at /: must have required property \'price\' ({"missingProperty":"price"})'],
  ])('fails with INPUT_BINDING_FAILED naming the input, where and why, on %s', (_what, value, problem) => {
    expect(() => checkInputTypes('n', { row }, { row: value })).toThrow(`node "n": ${problem}; fix the binding under inputs or the type or schema under inputTypes`);
  });

  it('names an input with no value', () => {
    expect(() => checkInputTypes('n', { row }, {})).toThrow('input "row" has no value (its expression matched nothing), declared with a JSON Schema');
  });
});
