import { compileJsonSchema, schemaMismatch } from './json-schema';

/** The validator of a schema that must compile. */
function compiled(schema: unknown) {
  const result = compileJsonSchema(schema);
  if ('problem' in result) throw new Error(`did not compile: ${result.problem}`);
  return result.validate;
}

function problemOf(schema: unknown): string {
  const result = compileJsonSchema(schema);
  return 'problem' in result ? result.problem : 'compiled';
}

describe('JSON Schemas from tenants (json-schema.ts)', () => {
  it('checks each pattern against its own regex (RE2), not the first one compiled', () => {
    const letters = compiled({ type: 'string', pattern: '^[a-z]+$' });
    const digits = compiled({ type: 'string', pattern: '^[0-9]+$' });
    expect([letters('abc'), letters('123'), digits('123'), digits('abc')]).toEqual([true, false, true, false]);
    const keys = compiled({ type: 'object', patternProperties: { '^x-': { type: 'number' } } });
    expect([keys({ 'x-a': 1 }), keys({ 'x-a': 'no' }), keys({ y: 'any' })]).toEqual([true, false, true]);
    expect(problemOf({ pattern: '(?=a)' })).toMatch(/RE2 syntax/);
  });

  it('bounds the RE2 work of a pattern scan, and the time of a check\'s patterns together: beyond, a mismatch that says why', () => {
    const heavy = compiled({ type: 'string', pattern: '[ab]{1000}$' });
    expect(schemaMismatch(heavy, 'a'.repeat(100_000))).toEqual({ path: '/', reason: expect.stringMatching(/^cannot be checked against this value: pattern \/\[ab\]\{1000\}\$\/ would scan 100000 characters with an RE2 program of \d+ instructions \(\d+ units of work; one scan may do 32768000\): use a simpler pattern or a shorter value; fix the schema$/) });
    expect(schemaMismatch(heavy, 'a'.repeat(2000))).toBeUndefined();
    // Each scan allowed, thousands of them: stopped once the check has run a second (20 s of scanning otherwise).
    const each = compiled({ type: 'array', items: { type: 'string', pattern: '[ab]{100}$' } });
    const values = Array.from({ length: 5000 }, () => 'a'.repeat(1000));
    expect(schemaMismatch(each, values)?.reason).toBe('cannot be checked against this value: the schema\'s patterns ran longer than 1000 ms over this value: use simpler patterns or a smaller value; fix the schema');
    expect(schemaMismatch(each, values.slice(0, 20))).toBeUndefined(); // the time is per check
    // Many short values with a small pattern pass: 20,000 emails.
    const emails = compiled({ type: 'array', items: { type: 'string', pattern: '^[^@]+@[^@]+$' } });
    expect(schemaMismatch(emails, Array.from({ length: 20_000 }, (_, i) => `user${i}@example.com`))).toBeUndefined();
  });

  it('keeps one schema\'s $id to itself: another schema cannot $ref it', () => {
    compiled({ $id: 'https://example.com/secret', properties: { k: { const: 'secret' } } });
    expect(problemOf({ $ref: 'https://example.com/secret' })).toMatch(/^is not a JSON Schema podflow can check: .*can't resolve reference/);
    // The same $id again, in another schema, compiles too.
    expect(problemOf({ $id: 'https://example.com/secret', type: 'string' })).toBe('compiled');
  });

  it('refuses $async (it would pass everything and reject a promise nobody awaits), a non-draft-07 schema, and a non-object', () => {
    expect(problemOf({ $async: true, type: 'string' })).toBe('is an asynchronous schema ($async), which podflow does not run; remove "$async"');
    expect(problemOf({ type: 'no-such-type' })).toMatch(/^is not a JSON Schema podflow can check: at \/type it must be equal to one of the allowed values/);
    expect(problemOf([1])).toBe('is not a JSON Schema (an object such as {"type": "string"})');
  });

  it('reports a schema that refers to itself without end as a mismatch, never a thrown stack overflow', () => {
    const endless = compiled({ $ref: '#' });
    expect(schemaMismatch(endless, 1)).toEqual({ path: '/', reason: 'cannot be checked against this value: it refers to itself without end, or the value nests too deep for it; fix the schema' });
    // A recursive schema that ends (a tree) works.
    const tree = compiled({ type: 'object', properties: { children: { type: 'array', items: { $ref: '#' } } } });
    expect(schemaMismatch(tree, { children: [{ children: [] }, { children: [{}] }] })).toBeUndefined();
    expect(schemaMismatch(tree, { children: [{ children: 1 }] })).toEqual({ path: '/children/0/children', reason: 'must be array ({"type":"array"})' });
  });

  it('checks uniqueItems in linear time, naming the repeated item', () => {
    const unique = compiled({ type: 'array', uniqueItems: true });
    const many = Array.from({ length: 200_000 }, (_, i) => ({ id: i, tags: ['a', 'b'] }));
    const started = Date.now();
    expect(schemaMismatch(unique, many)).toBeUndefined();
    // Pairwise comparison of 200,000 objects would take minutes; this is a fraction of a second.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(schemaMismatch(unique, [{ a: 1, b: 2 }, { b: 2, a: 1 }])).toEqual({ path: '/', reason: 'must not have duplicate items (item 1 repeats an earlier one) ({"i":1})' });
  });

  it('takes draft-07 "$schema" ids (http or https) and refuses any other dialect with a 400-worthy problem, never a throw', () => {
    expect(problemOf({ $schema: 'http://json-schema.org/draft-07/schema#', type: 'string' })).toBe('compiled');
    expect(problemOf({ $schema: 'https://json-schema.org/draft-07/schema#', type: 'string' })).toBe('compiled');
    expect(problemOf({ $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'string' })).toBe(
      'declares "$schema": "https://json-schema.org/draft/2020-12/schema"; podflow checks draft-07 schemas only: remove "$schema", or use "http://json-schema.org/draft-07/schema#"',
    );
    expect(problemOf({ $schema: 5 })).toMatch(/^declares "\$schema": 5;/);
    // A $schema pointing into the meta-schema cannot skip the check.
    expect(problemOf({ $schema: 'http://json-schema.org/draft-07/schema#/properties/default', type: 'bogus' })).toMatch(/^declares "\$schema"/);
    // A field typed as a JSON Schema refers to the meta-schema.
    const typed = compiled({ type: 'object', properties: { schema: { $ref: 'http://json-schema.org/draft-07/schema#' } } });
    expect([typed({ schema: { type: 'string' } }), typed({ schema: { type: 5 } })]).toEqual([true, false]);
  });

  it('looks at own properties only: an inherited name is not present', () => {
    expect(schemaMismatch(compiled({ required: ['constructor'] }), {})).toEqual({ path: '/', reason: 'must have required property \'constructor\' ({"missingProperty":"constructor"})' });
  });
});
