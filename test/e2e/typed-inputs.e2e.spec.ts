import { API_KEY, runToEnd, startStack, type Stack } from '../support/stack';

// Issue 15: typed inputs. A node declares the JSON types of its bound inputs (`inputTypes`); a
// bound value of another type fails the node with INPUT_BINDING_FAILED, naming the input, the
// declared and the actual type, before any sandbox starts. Matching values reach main unchanged.
describe('typed inputs (issue 15)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 1 });
  });
  afterAll(() => stack?.stop());

  const workflow = (loaded: Record<string, unknown>) => ({
    id: 'typed',
    nodes: [
      { id: 'load', language: 'javascript', code: `function main() { return ${JSON.stringify(loaded)}; }` },
      {
        id: 'report',
        language: 'python',
        code: 'def main(count, rows, cfg, flag, name):\n    return {"types": [type(v).__name__ for v in (count, rows, cfg, flag, name)], "count": count}\n',
        inputs: { count: 'nodes.load.output.count', rows: 'nodes.load.output.rows', cfg: 'nodes.load.output.cfg', flag: 'nodes.load.output.flag', name: 'nodes.load.output.name' },
        inputTypes: { count: 'integer', rows: 'array', cfg: 'object', flag: 'boolean', name: 'string' },
      },
    ],
    edges: [{ from: 'load', to: 'report' }],
  });
  const good = { count: 12, rows: [1, 2], cfg: { a: 1 }, flag: true, name: 'Ada' };

  it('passes matching values to main unchanged', async () => {
    const run = await runToEnd(stack, workflow(good));
    expect({ status: run.status, output: run.nodes.report?.output }).toEqual({
      status: 'succeeded',
      output: { types: ['int', 'list', 'dict', 'bool', 'str'], count: 12 },
    });
  });

  it.each([
    ['a number as a string', { count: '12' }, 'input "count" is a string ("12"), declared as integer'],
    ['a fraction for an integer', { count: 1.5 }, 'input "count" is a number (1.5), declared as integer'],
    ['an object for an array', { rows: { a: 1 } }, 'input "rows" is an object ({"a":1}), declared as array'],
    ['an array for an object', { cfg: [1] }, 'input "cfg" is an array ([1]), declared as object'],
    ['a string for a boolean', { flag: 'true' }, 'input "flag" is a string ("true"), declared as boolean'],
    ['null for a string', { name: null }, 'input "name" is null (null), declared as string'],
    ['a missing value', { name: undefined }, 'input "name" has no value (its expression matched nothing), declared as string'],
  ])('fails the node before it runs on %s, naming the input and both types', async (_what, change, problem) => {
    const run = await runToEnd(stack, workflow({ ...good, ...change }));
    expect({ status: run.status, code: run.error?.code, nodeId: run.error?.nodeId }).toEqual({ status: 'failed', code: 'INPUT_BINDING_FAILED', nodeId: 'report' });
    expect(run.error?.message).toBe(`node "report": ${problem}; fix the binding under inputs or the type under inputTypes`);
    // No sandbox started for it.
    expect({ status: run.nodes.report?.status, attempts: run.nodes.report?.attempts }).toEqual({ status: 'failed', attempts: 0 });
  });

  it('refuses a type for an input that is not bound, at submission, with 400 naming it', async () => {
    const definition = workflow(good);
    (definition.nodes[1] as { inputTypes: Record<string, string> }).inputTypes = { count: 'integer', cuont: 'integer' };
    const response = await fetch(`${stack.url}/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ workflow: definition }),
    });
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(response.status).toBe(400);
    expect(body.error.message).toContain('nodes[1].inputTypes.cuont: types "cuont", which is not an input of this node; bound inputs: count, rows, cfg, flag, name (did you mean "count"?)');
  });

  // A JSON Schema as the type: checked before the sandbox starts, the mismatch named with its path.
  const withSchema = (rows: unknown) => ({
    id: 'typed-schema',
    nodes: [
      { id: 'load', language: 'javascript', code: `function main() { return { rows: ${JSON.stringify(rows)} }; }` },
      {
        id: 'sum',
        language: 'python',
        code: 'def main(rows):\n    return {"total": sum(r["price"] for r in rows)}\n',
        inputs: { rows: 'nodes.load.output.rows' },
        inputTypes: { rows: { type: 'array', minItems: 1, items: { type: 'object', required: ['price'], properties: { price: { type: 'number', minimum: 0 } } } } },
      },
    ],
    edges: [{ from: 'load', to: 'sum' }],
  });

  it('checks a JSON Schema input type: a matching value runs, a mismatch fails before any sandbox with the path', async () => {
    const good = await runToEnd(stack, withSchema([{ price: 2 }, { price: 3.5 }]));
    expect({ status: good.status, output: good.nodes.sum?.output }).toEqual({ status: 'succeeded', output: { total: 5.5 } });
    const bad = await runToEnd(stack, withSchema([{ price: 2 }, { price: -1 }]));
    expect({ status: bad.status, code: bad.error?.code, attempts: bad.nodes.sum?.attempts }).toEqual({ status: 'failed', code: 'INPUT_BINDING_FAILED', attempts: 0 });
    expect(bad.error?.message).toBe(
      'node "sum": input "rows" ([{"price":2},{"price":-1}]) does not match its JSON Schema at /1/price: must be >= 0 ({"comparison":">=","limit":0}); fix the binding under inputs or the type or schema under inputTypes',
    );
    const refused = await fetch(`${stack.url}/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ workflow: { ...withSchema([]), nodes: [withSchema([]).nodes[0], { ...withSchema([]).nodes[1], inputTypes: { rows: { type: 'list' } } }] } }),
    });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain('nodes[1].inputTypes.rows: the JSON Schema is not a JSON Schema podflow can check');
  });
});
