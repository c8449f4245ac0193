import { Matcher } from 're2js';
import { DEFAULT_EXPRESSION_LIMITS, evaluateExpression, expressionSyntaxError, type ExpressionContext } from './expressions';

// Issue 10 review, finding 4: user regular expressions run on RE2 (linear time), once per match,
// within the expression's time and a work bound per match attempt.

const context: ExpressionContext = { inputs: { text: 'John Smith, jane doe' }, nodes: {}, run: { id: 'r', tenant: 't' } };
const origin = 'input binding "x" of node "n"';
const evaluate = (expression: string) => evaluateExpression(expression, context, origin);

describe('regular expressions in expressions', () => {
  it('matches a pattern that backtracks catastrophically in JavaScript at once', async () => {
    // Each extra "a" doubled JavaScript's time: 25 took seconds, 40 would take days, in one step.
    expect(await evaluate(`$match("${'a'.repeat(40)}!", /(a+)+$/)`)).toBeUndefined();
    expect(await evaluate(`$contains("${'a'.repeat(5000)}!", /^(a|aa)+$/)`)).toBe(false);
    expect(await evaluate(`$replace("${'a'.repeat(5000)}!", /(a*)*b/, "x")`)).toBe(`${'a'.repeat(5000)}!`);
  });

  it('keeps JSONata semantics: groups, $n replacements, split, flags, custom matchers', async () => {
    expect(await evaluate('$match("ab12cd345", /([a-z]+)([0-9]+)/)')).toEqual([
      { match: 'ab12', index: 0, groups: ['ab', '12'] },
      { match: 'cd345', index: 4, groups: ['cd', '345'] },
    ]);
    expect(await evaluate('$match("ab12cd345", /[0-9]+/, 1)')).toEqual({ match: '12', index: 2, groups: [] });
    expect(await evaluate('$replace(inputs.text, /(\\w+)\\s(\\w+)/, "$2 $1 $$ $0")')).toBe('Smith John $ John Smith, doe jane $ jane doe');
    expect(await evaluate('$replace(inputs.text, /(\\w+)/, function($m) { $uppercase($m.groups[0]) }, 2)')).toBe('JOHN SMITH, jane doe');
    expect(await evaluate('$split("a1b22c333d", /[0-9]+/)')).toEqual(['a', 'b', 'c', 'd']);
    expect(await evaluate('$split("a1b22c333d", /[0-9]+/, 2)')).toEqual(['a', 'b']);
    expect(await evaluate('$contains("Hello", /LL/i)')).toBe(true);
    expect(await evaluate('$match("line1\\nline2", /^line\\d$/m).match')).toEqual(['line1', 'line2']);
    expect(await evaluate('$match("😀x", /./).match')).toEqual(['😀', 'x']);
    expect(await evaluate('$match("x(y)/z", /\\(y\\)\\/z/).index')).toBe(1);
    expect(await evaluate('["apple", "cherry", "avocado"][$ ~> /^a/]')).toEqual(['apple', 'avocado']);
    const customMatcher = 'function($s) { { "match": "b", "start": 1, "end": 2, "groups": [], "next": function() { undefined } } }';
    expect(await evaluate(`$match("abc", ${customMatcher})`)).toEqual({ match: 'b', index: 1, groups: [] });
    expect(await evaluate(`$replace("abc", ${customMatcher}, "B")`)).toBe('aBc');
    await expect(evaluate('$match("aaa", /a*?/)')).rejects.toMatchObject({ code: 'INPUT_BINDING_FAILED', message: expect.stringContaining('zero length') });
  });

  it('runs each regular expression once per match, not once to count and again to build', async () => {
    const find = jest.spyOn(Matcher.prototype, 'find');
    try {
      expect(await evaluate('$match("a,b,c", /,/).index')).toEqual([1, 3]);
      // The first match, the second, and the search that finds no third.
      expect(find).toHaveBeenCalledTimes(3);
      find.mockClear();
      expect(await evaluate('$replace("a,b,c", /,/, ";")')).toBe('a;b;c');
      expect(await evaluate('$split("a,b,c", /,/)')).toEqual(['a', 'b', 'c']);
      expect(find).toHaveBeenCalledTimes(6);
    } finally {
      find.mockRestore();
    }
  });

  it('refuses backreferences and lookaround when the definition is checked, and when evaluated', async () => {
    for (const pattern of ['/(a)\\1/', '/(?<x>a)\\k<x>/', '/a(?=b)/', '/(?<!x)a/']) {
      expect(expressionSyntaxError(`$match(inputs.text, ${pattern})`)).toMatch(/is not supported: .*RE2, in time linear in the text: backreferences \(\\1, \\k<name>\) and lookaround/);
      await expect(evaluate(`$match(inputs.text, ${pattern})`)).rejects.toMatchObject({ code: 'INPUT_BINDING_FAILED', message: expect.stringContaining('is not supported') });
    }
    expect(expressionSyntaxError('$match(inputs.text, /(?<word>\\w+)\\\\k</)')).toBeUndefined();
  });

  it('bounds the work of one match attempt and the time of many, naming the limit', async () => {
    // RE2's time is linear in the text times the pattern's program size: [ab]{999} is a 1000-instruction program.
    await expect(evaluate('$match($pad("", 200000, "ab"), /[ab]{999}$/)')).rejects.toMatchObject({
      code: 'INPUT_BINDING_FAILED',
      message: expect.stringMatching(/would scan 200000 characters with an RE2 program of \d+ instructions.*EXPRESSION_TIMEOUT_MS/),
      details: expect.objectContaining({ limit: true }),
    });
    // Each attempt of a*z|a scans to the end of the text: 100,000 attempts over 100,000 characters.
    await expect(evaluateExpression('$count($match($pad("", 100000, "a"), /a*z|a/))', context, origin, { ...DEFAULT_EXPRESSION_LIMITS, timeoutMs: 200 })).rejects.toMatchObject({
      code: 'INPUT_BINDING_FAILED',
      message: expect.stringContaining('time ran out; the limit is EXPRESSION_TIMEOUT_MS=200'),
    });
  });
});
