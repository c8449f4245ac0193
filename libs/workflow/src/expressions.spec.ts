import { PodflowError } from '@podflow/protocol';
import { createRunState } from './engine';
import { MAX_EXPRESSION_CHARS, buildExpressionContext, compileExpression, evaluateExpression, expressionSyntaxError, isTruthy, type ExpressionContext } from './expressions';
import { parseWorkflow } from './validate';

const context: ExpressionContext = {
  inputs: { user: 'ann', items: [{ x: 1 }, { x: 2 }] },
  nodes: {
    load: { status: 'succeeded', output: { rows: [1, 2, 3], word: 'abc', nested: { a: { b: true } } } },
    'my-node': { status: 'succeeded', output: { v: 1 } },
    broken: { status: 'failed', error: { code: 'CODE_EXECUTION_FAILED', message: 'boom', nodeId: 'broken' } },
  },
  run: { id: 'run-1', tenant: 'tenant-1' },
};

describe('evaluateExpression', () => {
  it('reads the context: inputs, node outputs, status, error and run', async () => {
    expect(await evaluateExpression('nodes.load.output.rows', context)).toEqual([1, 2, 3]);
    expect(await evaluateExpression('$count(nodes.load.output.rows) > 2', context)).toBe(true);
    expect(await evaluateExpression('inputs.user & "@" & run.tenant', context)).toBe('ann@tenant-1');
    expect(await evaluateExpression('nodes.broken.error.code', context)).toBe('CODE_EXECUTION_FAILED');
    expect(await evaluateExpression('nodes.`my-node`.output.v', context)).toBe(1);
  });

  it('returns plain JSON: sequences become arrays, absent values disappear', async () => {
    const items = await evaluateExpression('inputs.items.x', context);
    expect(items).toEqual([1, 2]);
    expect(Object.keys(items as object)).toEqual(['0', '1']);
    expect(await evaluateExpression('nodes.load.output.missing', context)).toBeUndefined();
    expect(await evaluateExpression('{ "a": nodes.load.output.missing, "b": 1 }', context)).toEqual({ b: 1 });
  });

  it('never aliases the context', async () => {
    const value = (await evaluateExpression('nodes.load.output.nested', context)) as { a: { b: boolean } };
    value.a.b = false;
    expect(context.nodes.load.output).toEqual({ rows: [1, 2, 3], word: 'abc', nested: { a: { b: true } } });
  });

  it('throws INPUT_BINDING_FAILED naming the origin and the expression', async () => {
    const failure = evaluateExpression('$number(nodes.load.output.word)', context, 'input binding "n" of node "x"');
    await expect(failure).rejects.toBeInstanceOf(PodflowError);
    await expect(failure).rejects.toMatchObject({
      code: 'INPUT_BINDING_FAILED',
      message: 'input binding "n" of node "x": expression "$number(nodes.load.output.word)" failed at position 8: Unable to cast value to a number: "abc"',
    });
  });

  it('rejects results that are not JSON', async () => {
    await expect(evaluateExpression('function($x) { $x }', context, 'workflow output')).rejects.toMatchObject({
      code: 'INPUT_BINDING_FAILED',
      message: expect.stringContaining('workflow output: expression "function($x) { $x }" yields a function'),
    });
  });

  it('stops runaway expressions instead of stalling the coordinator', async () => {
    await expect(evaluateExpression('($f := function($n) { $f($n + 1) }; $f(0))', context)).rejects.toMatchObject({ code: 'INPUT_BINDING_FAILED' });
  });
});

describe('compileExpression', () => {
  it('compiles each expression once', () => {
    expect(compileExpression('inputs.a + 1')).toBe(compileExpression('inputs.a + 1'));
  });

  it('explains syntax errors with their position', () => {
    expect(expressionSyntaxError('inputs.a +')).toBe('JSONata syntax error at position 10: Unexpected end of expression (in "inputs.a +")');
    expect(expressionSyntaxError('  ')).toMatch(/^is empty/);
    expect(expressionSyntaxError('inputs.a')).toBeUndefined();
  });
});

describe('expressions that could change the run they read', () => {
  const rebindings = [
    '( $clone := function($v) { $v }; nodes.load.output ~> |$|{"x": 1}| )',
    '(function($clone) { nodes.load.output ~> |$|{"x": 1}| })(function($v) { $v })',
    'nodes.load@$clone.(output ~> |$|{"x": 1}|)',
    'nodes.load#$clone.(output ~> |$|{"x": 1}|)',
  ];

  it.each(rebindings)('refuses binding $clone, which the transform operator copies its input with: %s', async (expression) => {
    expect(expressionSyntaxError(expression)).toMatch(/^binds the variable \$clone at position \d+, which the transform operator \(~> \|\.\.\.\|\) uses to copy its input; give the variable another name/);
    // Refused when evaluated too (a definition stored before the rule): the records stay as they were.
    const records = structuredClone(context);
    await expect(evaluateExpression(expression, records, 'input binding "x" of node "n"')).rejects.toMatchObject({ code: 'INPUT_BINDING_FAILED', message: expect.stringContaining('binds the variable $clone') });
    expect(records).toEqual(context);
  });

  it('transforms a copy: the records an expression reads are never changed', async () => {
    const records = structuredClone(context);
    expect(await evaluateExpression('nodes.load.output ~> |$|{"x": 1}|', records)).toMatchObject({ x: 1, word: 'abc' });
    expect(await evaluateExpression('$clone(nodes.load.output).word', records)).toBe('abc');
    expect(records).toEqual(context);
  });

  it(`refuses an expression longer than ${MAX_EXPRESSION_CHARS} characters, at validation and at evaluation`, async () => {
    const long = `[${'1,'.repeat(MAX_EXPRESSION_CHARS / 2)}1]`;
    expect(expressionSyntaxError(long)).toBe(`is ${long.length} characters long; an expression may have at most ${MAX_EXPRESSION_CHARS}: compute large values in a node instead`);
    await expect(evaluateExpression(long, context)).rejects.toMatchObject({ code: 'INPUT_BINDING_FAILED' });
    expect(expressionSyntaxError(`[${'1,'.repeat(MAX_EXPRESSION_CHARS / 2 - 2)}1]`)).toBeUndefined();
  });
});

describe('isTruthy', () => {
  it.each([undefined, null, false, 0, '', [], [0, ''], {}, Number.NaN])('%p is false', (value) => {
    expect(isTruthy(value)).toBe(false);
  });

  it.each([true, 1, -1, 'x', [0, 1], { a: 1 }, 'false'])('%p is true', (value) => {
    expect(isTruthy(value)).toBe(true);
  });
});

describe('buildExpressionContext', () => {
  it('exposes inputs, every node with its status, and the run', () => {
    const workflow = parseWorkflow({ id: 'wf', nodes: [{ id: 'a', language: 'python', code: 'x' }] });
    const state = createRunState({ id: 'r1', tenantId: 't1', workflow, inputs: { q: 1 }, now: 0 });
    expect(buildExpressionContext(state)).toEqual({ inputs: { q: 1 }, nodes: { a: { status: 'pending' } }, run: { id: 'r1', tenant: 't1' } });
  });
});
