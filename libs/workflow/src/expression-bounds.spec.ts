import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type jsonata from 'jsonata';
import { DEFAULT_EXPRESSION_LIMITS, evaluateExpression, type ExpressionContext, type ExpressionLimits } from './expressions';

const context: ExpressionContext = { inputs: { text: 'héllo wörld', words: ['a', 'b', 'a'] }, nodes: {}, run: { id: 'r', tenant: 't' } };
const small: ExpressionLimits = { ...DEFAULT_EXPRESSION_LIMITS, maxBytes: 64 * 1024 };
const origin = 'input binding "x" of node "big"';

/** JSONata as the library ships it, for reference results: the published file, unchanged (podflow's is jsonata-patched.ts). */
let reference!: typeof jsonata;
jest.isolateModules(() => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  reference = require('jsonata');
});

/** What JSONata itself gives for `expression` (value, or error code and message), and what podflow gives. */
async function bothWays(expression: string, data: unknown = {}) {
  let expected: { value?: unknown; error?: string; message?: string };
  try {
    expected = { value: JSON.parse(JSON.stringify((await reference(expression).evaluate(data)) ?? null)) };
  } catch (error) {
    expected = { error: (error as { code: string }).code, message: (error as Error).message };
  }
  const scope: ExpressionContext = { ...context, inputs: data as ExpressionContext['inputs'] };
  const got: { value?: unknown; error?: string; message?: string } = await evaluateExpression(expression.replaceAll('$$.', 'inputs.'), scope).then(
    (value) => ({ value: value ?? null }),
    (error: Error & { details?: { jsonataCode?: string } }) => ({ error: error.details?.jsonataCode, message: error.message }),
  );
  return { expected, got };
}

/** The failure an over-limit expression must produce: INPUT_BINDING_FAILED naming the node and the setting. */
function limitFailure(setting: RegExp) {
  return { code: 'INPUT_BINDING_FAILED', message: expect.stringMatching(new RegExp(`^input binding "x" of node "big": .*${setting.source}`)) };
}

/** The same value as JSONata gives, or the same error code with JSONata's message in podflow's. */
async function expectAsJsonata(expression: string, data: unknown = {}): Promise<void> {
  const { expected, got } = await bothWays(expression, data);
  if (expected.error === undefined) expect(got).toEqual(expected);
  else expect({ error: got.error, includes: got.message?.includes(expected.message!) }).toEqual({ error: expected.error, includes: true });
}

describe('expression bounds: size', () => {
  it('refuses $pad("", 200000000) before allocating it', async () => {
    const before = process.memoryUsage().rss;
    await expect(evaluateExpression('$pad("", 200000000)', context, origin)).rejects.toMatchObject(limitFailure(/\$pad to a width of 200000000 would build 200000002 bytes of JSON, over the limit of 8388608 bytes per expression value \(EXPRESSION_MAX_BYTES\)/));
    // 200 MB would show; the refusal allocates nothing of that order.
    expect(process.memoryUsage().rss - before).toBeLessThan(100 * 1024 * 1024);
  });

  it('still pads within the limit, with JSONata semantics', async () => {
    expect(await evaluateExpression('$pad("x", 5, "ab")', context)).toBe('xabab');
    expect(await evaluateExpression('$pad("x", -4, "😀")', context)).toBe('😀😀😀x');
    expect(await evaluateExpression('$pad("long", 2)', context)).toBe('long');
  });

  it('stops a string doubled with & at the limit, without flattening it', async () => {
    const doubling = '($f := function($s, $n) { $n = 0 ? $s : $f($s & $s, $n - 1) }; $length($f("x", 40)))';
    await expect(evaluateExpression(doubling, context, origin, small)).rejects.toMatchObject(limitFailure(/the & operator .*EXPRESSION_MAX_BYTES/));
  });

  it('stops an object that doubles by sharing one part', async () => {
    const doubling = '($f := function($x, $n) { $n = 0 ? $x : $f({ "a": $x, "b": $x }, $n - 1) }; $f("xxxxxxxx", 60))';
    await expect(evaluateExpression(doubling, context, origin, small)).rejects.toMatchObject(limitFailure(/object constructor .*EXPRESSION_MAX_BYTES/));
  });

  it('measures & operands and $string arguments before stringifying them', async () => {
    // One 1 KB object referenced 1000 times: little memory, 1 MB once serialised.
    const shared = '($x := { "a": $pad("", 1000, "y") }; [1..1000].{ "v": $x })';
    await expect(evaluateExpression(`${shared.slice(0, -1)} & "")`, context, origin, small)).rejects.toMatchObject(limitFailure(/the & operator would build .*EXPRESSION_MAX_BYTES/));
    await expect(evaluateExpression(`$string(${shared})`, context, origin, small)).rejects.toMatchObject(limitFailure(/\$string would build .*EXPRESSION_MAX_BYTES/));
    await expect(evaluateExpression(shared, context, origin, small)).rejects.toMatchObject(limitFailure(/the result would build .*EXPRESSION_MAX_BYTES/));
  });

  it('bounds the total built by one evaluation, not only each value', async () => {
    const many = '$map([1..200], function($i) { [1..5000] })';
    await expect(evaluateExpression(many, context, origin, small)).rejects.toMatchObject(limitFailure(/built more than 262144 bytes in total \(4 × EXPRESSION_MAX_BYTES\)/));
  });

  it('caps sequences at maxBytes / 8 items before allocating them', async () => {
    await expect(evaluateExpression('$count([1..10000000])', context, origin, small)).rejects.toMatchObject(limitFailure(/8192 items per sequence, EXPRESSION_MAX_BYTES \/ 8/));
  });

  it.each([
    ['$join', '$join([1..2000].$pad("", 100, "z"), "")'],
    ['$replace', '$replace($pad("", 60000, "a"), "a", "bbbbbbbb")'],
    ['$split', '$split($pad("", 60000, "a"), "")'],
    ['$match', '$match($pad("", 60000, "a"), /a/)'],
    ['$formatNumber', '$formatNumber(1, $pad("", 5000, "0"))'],
    ['$now', '$now($pad("", 5000, "Y"))'],
  ])('checks %s before it builds', async (name, expression) => {
    await expect(evaluateExpression(expression, context, origin, small)).rejects.toMatchObject({ code: 'INPUT_BINDING_FAILED', message: expect.stringContaining(name) });
  });

  it('refuses $eval, whose code would bypass the bounds', async () => {
    await expect(evaluateExpression('$eval("1 + 1")', context, origin)).rejects.toMatchObject({ message: expect.stringContaining('$eval is not available') });
  });

  it('bounds the depth of evaluation', async () => {
    await expect(evaluateExpression('($f := function($n) { $n = 0 ? 0 : 1 + $f($n - 1) }; $f(10000))', context, origin)).rejects.toMatchObject(
      limitFailure(/the limit is 500 nested evaluation steps/),
    );
  });
});

describe('expression bounds: bounded built-ins keep JSONata semantics', () => {
  const strings = ['', 'abc', 'héllo', 'a😀b😀c', '😀', '\uD800x', 'x\uDC00\uD83D', 'a\uD83D\uDE00\uD83D'];
  const calls = [
    '$length($s)',
    '$substring($s, 1)',
    '$substring($s, 1, 2)',
    '$substring($s, -2)',
    '$substring($s, -3, 2)',
    '$substring($s, 0, 0)',
    '$substring($s, 10)',
    '$substring($s, -10, 3)',
    '$substring($s, 1.7, 1.2)',
    '$pad($s, 6, "-")',
    '$pad($s, -7, "😀.")',
    '$distinct([$s, "abc", $s, 1, 1, {"a": [1]}, {"a": [1]}])',
    '$replace($s, "b", "[$0]")',
    '$join([$s, $s], ",")',
    '$split($s, "b")',
  ];
  it.each(calls)('%s', async (call) => {
    for (const s of strings) {
      const expected: unknown = await reference(call).evaluate({}, { s });
      const got = await evaluateExpression(call.replace(/\$s\b/g, JSON.stringify(s)), context);
      expect({ s, got }).toEqual({ s, got: JSON.parse(JSON.stringify(expected ?? null)) ?? undefined });
    }
  });

  it('checks the time limit at every function call, also of a built-in given to $map or $filter (JSONata checks it between steps only)', async () => {
    // Given as data, so nothing but the calls takes time: 10,000 truth tests of 1,000 zeros each.
    const zeros = new Array<number>(1_000).fill(0);
    const data = { P: new Array<number[]>(10_000).fill(zeros) };
    const quick: ExpressionLimits = { ...DEFAULT_EXPRESSION_LIMITS, timeoutMs: 50 };
    // JSONata itself runs them all inside one step, past its own 50 ms limit.
    expect(await reference('$count($map($$.P, $boolean))', { timeout: 50 }).evaluate(data)).toBe(10_000);
    for (const call of ['$map', '$filter']) {
      await expect(evaluateExpression(`$count(${call}(inputs.P, $boolean))`, { ...context, inputs: data }, origin, quick)).rejects.toMatchObject(limitFailure(/EXPRESSION_TIMEOUT_MS=50/));
    }
    expect(await evaluateExpression('$map([0, 1, ""], $boolean)', context)).toEqual([false, true, false]);
  });

  it('deduplicates large inputs in one pass (JSONata compares every pair)', async () => {
    expect(await evaluateExpression('$count($distinct([1..50000]))', context)).toBe(50000);
    expect(await evaluateExpression('$distinct([1..3000].{ "k": $ % 3 })', context)).toEqual([{ k: 1 }, { k: 2 }, { k: 0 }]);
  });

  it.each([
    '$sort([3, 1, 2, 1.5, -4])',
    '$sort(["b", "a", "B", "", "ä", "aa"])',
    '$sort([{"k": 2, "n": "x"}, {"k": 1, "n": "y"}, {"k": 2, "n": "z"}, {"k": 1, "n": "w"}], function($l, $r) { $l.k > $r.k })',
    '$sort([5, 3, 9, 1, 7, 3, 8, 2, 6, 4, 0], function($l, $r) { $l < $r })',
    '$sort(7)',
    '$sort([])',
    '$sort([1, "a"])',
    '$sort([{"a": 1}, {"a": 0}])',
    // Not a consistent order: the result depends on which pairs are compared, in which order.
    '$sort([1, 2, 3, 4, 5, 6, 7], function($a, $b) { $a % 3 = 0 or $b % 2 = 0 })',
    '$sort([3, 1, 2], function($a, $b) { [] })',
    '$sort([2, "a", 1], function($a, $b) { $a > $b })',
    '$sort([5, 2, 8, 1], function($a, $b) { $b = 1 ? $error("boom " & $string($a) & $string($b)) : $a > $b })',
  ])('sorts as JSONata does, stable, with its errors: %s', async (call) => {
    await expectAsJsonata(call);
  });

  const people = {
    people: [
      { name: 'Ada', age: 36, city: 'London' },
      { name: 'Alan', age: 41, city: 'Wilmslow' },
      { name: 'Grace', age: 36 },
      { name: 'Edsger', age: 72, city: 'Austin' },
      { name: 'Barbara', age: 41, city: 'Boston' },
    ],
  };
  it.each([
    '[3, 1, 2, 1.5, -4]^($)',
    '[3, 1, 2, 1.5, -4]^(>$)',
    '["b", "a", "B", "", "ä", "aa"]^($)',
    '$$.people^(age).name',
    '$$.people^(>age, name).name',
    // An absent key sorts last, whatever the direction.
    '$$.people^(city).name',
    '$$.people^(>city).name',
    // A tuple stream: positions bound with # and a context with @ survive the sort.
    '$$.people#$i^(>age, $i).{"name": name, "at": $i}',
    '$$.people@$p^($p.name)[$p.age > 40].$p.name',
    '[5]^($)',
    '[]^($)',
    '7^($)',
    '"text"^($)',
    '[{"a": 1}, {"a": 0}]^($)',
    '[1, "a"]^($)',
    '[2, 1]^($error("boom"))',
  ])('orders with ^(...) as JSONata does, stable, with its errors: %s', async (expression) => {
    await expectAsJsonata(expression, people);
  });

  it.each([
    '$toMillis("2024-03-05", "[Y0001]-[M01]-[D01]")',
    '$toMillis("5th of March 2024", "[D1o] of [MNn] [Y]")',
    '$toMillis("one thousand nine hundred and eighty-four", "[Yw]")',
    '$toMillis("MCMLXXXIV", "[YI]")',
    '$toMillis("2024-03-05 14:07:09", "[Y]-[M]-[D] [H]:[m]:[s]")',
    '$toMillis("Tuesday 5 march 2024", "[FNn] [D] [Mn] [Y]")',
    '$toMillis("not a date", "[Y]-[M]-[D]")',
    '$toMillis("2024", "[Y][M]")',
    '$toMillis("2024-03-05", "[Q]")',
  ])('parses timestamps by a picture as JSONata does: %s', async (expression) => {
    await expectAsJsonata(expression);
  });

  it('parses by a picture in linear time: the regular expression JSONata builds from it runs on RE2', async () => {
    // On JavaScript's backtracking engine: 11 s with ten [f], and no end in sight with thirty.
    const started = Date.now();
    expect(await evaluateExpression(`$toMillis("${'0'.repeat(40)}x", "${'[f]'.repeat(30)}")`, context)).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(5_000);
    // A picture of many word components makes a pattern longer than RE2 takes: named as such.
    await expect(evaluateExpression(`$toMillis("1984", "${'[Yw]'.repeat(100)}")`, context, origin)).rejects.toMatchObject({
      ...limitFailure(/\$toMillis: the picture "\[Yw\]\[Yw\].*" makes a pattern of \d+ characters to match, over the 10000 RE2 takes/),
      details: expect.objectContaining({ jsonataCode: 'P2017', limit: true }),
    });
    // The global RegExp is JavaScript's again afterwards.
    expect(new RegExp('a+').constructor).toBe(RegExp);
    expect(RegExp.prototype.exec).toBe(/x/.exec);
  });

  const shapes = {
    people: people.people,
    o: { a: [1, [2, 3]], b: 'x', c: [], d: { e: 1 }, f: [[[4]]] },
    one: { a: [1] },
    none: { a: [] },
    single: { a: 5 },
  };
  it.each([
    // Array constructors, now evaluated item after item (jsonata-patched.ts).
    '[1, "a", [2, 3], $$.o.b, $$.nothing, {"k": [1]}]',
    '[$$.people.name, $$.people[age > 40].city]',
    '[[], [[]], [$$.nothing]]',
    '$count([' + Array.from({ length: 600 }, (_, i) => i).join(',') + '])',
    // Group-by and object constructors, one group after another.
    '$$.people{city: name}',
    '$$.people{$string(age): $count(name), "all": $count(name)}',
    '$$.people@$p{$p.city: $p.name}',
    '$$.people#$i{$string($i % 2): [$i]}',
    '$$.people@$p#$i{$string($p.age): {"who": $p.name, "at": $i}}',
    '{"a": 1, "b": [1, 2], "c": $$.nothing}',
    // The wildcard, gathered in one array.
    '$$.o.*',
    '$$.one.*',
    '$$.none.*',
    '$$.single.*',
    '$count($$.o.*)',
    '$$.o.*[0]',
    '$$.people.*',
    // $spread, gathered in one array.
    '$spread($$.o)',
    '$spread([$$.o, [$$.single], 5])',
    '$spread([])',
    '$spread([{"a": 1}])',
    '$spread([$$.nothing])',
    '$spread("text")',
  ])('evaluates as JSONata does: %s', async (expression) => {
    await expectAsJsonata(expression, shapes);
  });

  it('groups into thousands of groups, which JSONata\'s depth count refused side by side (a "Stack overflow" at a few hundred)', async () => {
    const orders = Array.from({ length: 10_000 }, (_, i) => ({ customer: `c${i % 5_000}`, amount: i }));
    const data: ExpressionContext = { ...context, inputs: { orders } };
    // A generous time limit: this is about depth, and a loaded machine takes over a second.
    const patient: ExpressionLimits = { ...DEFAULT_EXPRESSION_LIMITS, timeoutMs: 60_000 };
    expect(await evaluateExpression('$count($keys(inputs.orders{customer: {"n": $count(amount), "total": $sum(amount) * 2}}))', data, origin, patient)).toBe(5_000);
  });

  it('gathers a wildcard, a group-by over bindings and $spread in linear time (JSONata copied the result per key, tuple or item: 87 s, 96 s, 21 s here)', async () => {
    const patient: ExpressionLimits = { ...DEFAULT_EXPRESSION_LIMITS, timeoutMs: 60_000 };
    const started = Date.now();
    expect(await evaluateExpression('($t := [1..10]; $o := $merge([1..60000].{"k" & $: $t}); $count($o.*))', context, origin, patient)).toBe(600_000);
    expect(await evaluateExpression('($r := [1..2000].[1..50]; $count($keys($$.$r@$v{"k": $count($v)})))', context, origin, patient)).toBe(1);
    expect(await evaluateExpression('$count($spread([1..100000]))', context, origin, patient)).toBe(100_000);
    // Each took seconds to minutes before; together well under a second here.
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('bounds the bindings of a path with @ or # (an object each: a million of them held 228 MB), naming the limit', async () => {
    expect(await evaluateExpression('($r := [1..100000]; $count($$.$r@$v#$i))', context)).toBe(100_000);
    const patient: ExpressionLimits = { ...DEFAULT_EXPRESSION_LIMITS, timeoutMs: 60_000 };
    await expect(evaluateExpression('($r := [1..1000000]; $count($$.$r@$v#$i))', context, origin, patient)).rejects.toMatchObject(
      limitFailure(/a path with @ or # bindings made more than 131072 bindings \(the limit is 131072 bindings per path, EXPRESSION_MAX_BYTES \/ 64\)/),
    );
  });

  it('bounds the bindings an order-by or a first step makes, before making them', async () => {
    // 64 KiB: sequences of 8,192 items, 1,024 bindings.
    const limits: ExpressionLimits = { ...DEFAULT_EXPRESSION_LIMITS, maxBytes: 64 * 1024, timeoutMs: 60_000 };
    expect(await evaluateExpression('($r := [1..1000]; $count($r^($)#$i))', context, origin, limits)).toBe(1_000);
    for (const expression of ['($r := [1..2000]; $count($r^($)#$i))', '($r := [1..2000]; $count($r#$i))', '($r := [1..2000]; $count($$.$r#$i))']) {
      await expect(evaluateExpression(expression, context, origin, limits)).rejects.toMatchObject({
        ...limitFailure(/made more than 1024 bindings \(the limit is 1024 bindings per path/),
        details: expect.objectContaining({ jsonataCode: 'P2015', limit: true }),
      });
    }
  });

  it('builds an array constructor of thousands of lists in linear time (JSONata copied the result per item: 6.9 s for these 4,000 here)', async () => {
    const expression = `($x := [1..200]; $count([${Array.from({ length: 4_000 }, () => '$x').join(',')}]))`;
    const patient: ExpressionLimits = { ...DEFAULT_EXPRESSION_LIMITS, timeoutMs: 60_000 };
    const started = Date.now();
    expect(await evaluateExpression(expression, context, origin, patient)).toBe(800_000);
    // About 75 ms here; generous for a loaded machine, and still well under the quadratic time.
    expect(Date.now() - started).toBeLessThan(3_000);
    await expect(evaluateExpression(`($x := [1..300]; [${Array.from({ length: 4_000 }, () => '$x').join(',')}])`, context, origin, patient)).rejects.toMatchObject(
      { ...limitFailure(/The maximum sequence length of 1048800 was exceeded\. \(the limit is 1048576 items per sequence/), details: expect.objectContaining({ jsonataCode: 'D2015', limit: true }) },
    );
  });

  it('evaluates the items of an array constructor left to right: a binding one makes is seen by the next, and the first failing item fails it (known divergences: JSONata evaluates them side by side)', async () => {
    expect(await reference('[$a := 1, $a]').evaluate({})).toEqual([1]);
    expect(await evaluateExpression('[$a := 1, $a]', context)).toEqual([1, 1]);
    await expect(reference('[(1; 2; $error("first")), $error("second")]').evaluate({})).rejects.toMatchObject({ message: 'second' });
    await expect(evaluateExpression('[(1; 2; $error("first")), $error("second")]', context, origin)).rejects.toMatchObject({ message: expect.stringMatching(/: first$/) });
  });

  it.each([
    '$encodeUrlComponent("a b/?&=中😀~*\'()")',
    '$encodeUrl("https://x.org/a b?q=中&r=😀#frag")',
    '$base64encode("héllo 😀")',
    '$zip([1, 2, 3], ["a", "b"], [true])',
    '$zip([1, 2])',
  ])('encodes and zips as JSONata does: %s', async (expression) => {
    await expectAsJsonata(expression);
  });

  it('refuses an encoding over EXPRESSION_MAX_BYTES before building it, counting its exact length', async () => {
    const limits: ExpressionLimits = { ...DEFAULT_EXPRESSION_LIMITS, maxBytes: 1000 };
    // 110 three-byte characters: 990 characters encoded, plus the quotes; one more is over.
    expect(await evaluateExpression(`$length($encodeUrlComponent($pad("", 110, "中")))`, context, origin, limits)).toBe(990);
    await expect(evaluateExpression(`$encodeUrlComponent($pad("", 111, "中"))`, context, origin, limits)).rejects.toMatchObject(limitFailure(/\$encodeUrlComponent would build 1001 bytes of JSON/));
    // Characters kept as they are count one each: 998 of them fit.
    expect(await evaluateExpression(`$length($encodeUrl($pad("", 998, "a")))`, context, origin, limits)).toBe(998);
    await expect(evaluateExpression(`$base64encode($pad("", 750, "a"))`, context, origin, limits)).rejects.toMatchObject(limitFailure(/\$base64encode would build 1002 bytes/));
    // JSONata encodes one byte per UTF-16 unit: 600 × "é" is 800 characters.
    expect(await evaluateExpression(`$length($base64encode($pad("", 600, "é")))`, context, origin, limits)).toBe(800);
    // Two lists of about 600 bytes each: the pairs would hold both.
    await expect(evaluateExpression(`$zip([$pad("", 600, "x")], [$pad("", 600, "y")])`, context, origin, limits)).rejects.toMatchObject(limitFailure(/\$zip would build 1210 bytes/));
    // Each tuple is an array of its own, about 8 items' worth of memory (a million took 140 MB).
    const patient: ExpressionLimits = { ...DEFAULT_EXPRESSION_LIMITS, timeoutMs: 60_000 };
    await expect(evaluateExpression('$count($zip([1..1000000]))', context, origin, patient)).rejects.toMatchObject(
      limitFailure(/\$zip into 1000000 tuples of 1 would build 9000000 items, over the limit of 1048576 items/),
    );
    expect(await evaluateExpression('$count($zip([1..100000], [1..200000]))', context, origin, patient)).toBe(100_000);
  });

  it.each([
    '$boolean([0, "", false, null, [], {}])',
    '$boolean([0, [0, [1]]])',
    '$boolean([[], [[]], [0]])',
    '$boolean([{"a": 1}])',
    '$$.people[city] ? "some" : "none"',
    '$$.people.age[$ > 40] and $$.o.c',
    '$not([0, [false, "x"]])',
    '{"a": [1, {"b": 2}]} = {"a": [1, {"b": 2}]}',
    '[1, [2, 3]] = [1, [2, 4]]',
    '$$.o != $$.o',
    '{"a": 1, "b": 2} = {"b": 2, "a": 1}',
  ])('tests truth and equality as JSONata does: %s', async (expression) => {
    await expectAsJsonata(expression, shapes);
  });

  it('stops a truth test or a comparison that would walk one value repeated many times (1e11 items built in milliseconds ran for minutes)', async () => {
    // A generous time limit: the walks are what is bounded here, whatever the machine's speed.
    const patient: ExpressionLimits = { ...DEFAULT_EXPRESSION_LIMITS, timeoutMs: 60_000 };
    const started = Date.now();
    // The first true item answers at once, as it always should have.
    expect(await evaluateExpression('($B := $$.[1..1000000]; $P := [1..100000].$B; $boolean($P))', context, origin, patient)).toBe(true);
    // With no true item, or two equal values compared, the walk is bounded.
    await expect(evaluateExpression('($B := $$.[$map([1..1000], function(){0})]; $P := [1..100000].$B; $P ? 1 : 0)', context, origin, patient)).rejects.toMatchObject(
      { ...limitFailure(/the truth of a value walked more than 16777216 values in one step/), details: expect.objectContaining({ jsonataCode: 'P2016', limit: true }) },
    );
    await expect(evaluateExpression('($b1 := {"a": [1..1000000]}; $b2 := {"a": [1..1000000]}; $r := [1..100000]; $r.$b1 = $r.$b2)', context, origin, patient)).rejects.toMatchObject(
      limitFailure(/a comparison with = or != walked more than 16777216 values in one step/),
    );
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('tests the truth of and compares values nested thousands deep, as JSONata does (one stack frame per level)', async () => {
    const nest = (levels: number, inner: unknown): unknown => (levels === 0 ? inner : [nest(levels - 1, inner)]);
    const data = { zero: nest(6_000, 0), one: nest(6_000, 1), other: nest(6_000, { a: 0 }) };
    for (const expression of ['$boolean($$.zero)', '$boolean($$.one)', '$$.zero = $$.zero', '$$.zero = $$.one', '$$.other != $$.zero']) {
      const { expected, got } = await bothWays(expression, data);
      expect({ expression, got }).toEqual({ expression, got: expected });
    }
  });

  it('orders large inputs with ^(...) in bounded memory (JSONata needs hundreds of MB for 35,000 items)', () => {
    const built = join(__dirname, '..', 'dist', 'index.js');
    if (!existsSync(built)) throw new Error(`${built} is missing: build @podflow/workflow first (npm test does)`);
    // In a process with a 64 MB heap: podflow's evaluation finishes, JSONata's own runs out of heap.
    const run = (script: string) => spawnSync(process.execPath, ['--max-old-space-size=64', '-e', script], { encoding: 'utf8', timeout: 120_000 });
    const podflow = run(`
      const { evaluateExpression, DEFAULT_EXPRESSION_LIMITS } = require(${JSON.stringify(built)});
      evaluateExpression('[1..35000]^(>$)[[0, 1, 34999]]', { inputs: {}, nodes: {} }, 'x', { ...DEFAULT_EXPRESSION_LIMITS, timeoutMs: 60000 })
        .then((value) => console.log(JSON.stringify(value)), (error) => { console.error(error.message); process.exit(3); });`);
    expect({ status: podflow.status, stdout: podflow.stdout.trim(), stderr: podflow.stderr.slice(-500) }).toEqual({ status: 0, stdout: '[35000,34999,1]', stderr: '' });
    const plain = run(`
      const jsonata = require(${JSON.stringify(require.resolve('jsonata'))});
      jsonata('[1..35000]^(>$)[[0, 1, 34999]]', { timeout: 60000 }).evaluate({}).then((value) => console.log(JSON.stringify(value)), (error) => { console.error(error.message); process.exit(3); });`);
    expect(plain.status).not.toBe(0);
    expect(plain.stderr).toMatch(/heap out of memory/);
  });

  it('sorts large inputs in n log n, within the time limit, with or without a comparator (JSONata copies the rest of a list at every merge step)', async () => {
    // A generous time limit, so a loaded machine does not fail it (a comparator is a JSONata lambda: microseconds a call).
    const patient: ExpressionLimits = { ...DEFAULT_EXPRESSION_LIMITS, timeoutMs: 60_000 };
    expect(await evaluateExpression('$count($sort([1..100000]))', context, origin, patient)).toBe(100000);
    expect(await evaluateExpression('$sort([1..3000], function($l, $r) { $l < $r })[[0, 2999]]', context, origin, patient)).toEqual([3000, 1]);
    const quick: ExpressionLimits = { ...DEFAULT_EXPRESSION_LIMITS, timeoutMs: 50 };
    await expect(evaluateExpression('$count($sort([1..100000], function($l, $r) { $l < $r }))', context, origin, quick)).rejects.toMatchObject(limitFailure(/EXPRESSION_TIMEOUT_MS=50/));
  });

  it('keeps __proto__ keys of the data', async () => {
    const data: ExpressionContext = { ...context, inputs: JSON.parse('{"__proto__": {"k": 1}, "o": {"__proto__": 2}}') };
    expect(JSON.stringify(await evaluateExpression('$lookup(inputs, "__proto__")', data))).toBe('{"k":1}');
    expect(JSON.stringify(await evaluateExpression('inputs.o', data))).toBe('{"__proto__":2}');
    expect(await evaluateExpression('inputs.constructor', data)).toBeUndefined();
  });
});

describe('expression bounds: depth (issue 10 review, finding 5)', () => {
  const wrapped = (times: number) => `$reduce([1..${times}], function($a, $i) { { "a": $a } }, {})`;

  it('refuses a result nested deeper than MAX_JSON_DEPTH, naming the limit, and returns one exactly that deep', async () => {
    // {} is one level; 63 wrappings make 64.
    const deepest = await evaluateExpression(wrapped(63), context, origin);
    let levels = 0;
    for (let at: unknown = deepest; typeof at === 'object' && at !== null; at = (at as { a?: unknown }).a) levels++;
    expect(levels).toBe(64);
    for (const times of [64, 3000]) {
      await expect(evaluateExpression(wrapped(times), context, origin)).rejects.toMatchObject({
        code: 'INPUT_BINDING_FAILED',
        message: expect.stringMatching(/^input binding "x" of node "big": .*nested deeper than 64 levels of objects and arrays \(at a\.a\.a.*MAX_JSON_DEPTH/),
        details: expect.objectContaining({ limit: true }),
      });
    }
    await expect(evaluateExpression(`[${wrapped(100)}]`, context, 'workflow output')).rejects.toMatchObject({ code: 'INPUT_BINDING_FAILED', message: expect.stringContaining('(at [0].a.a') });
  });
});
