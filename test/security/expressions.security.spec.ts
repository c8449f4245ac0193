import { startStack, type Stack } from '../support/stack';
import { call, eventually, expectHealthy, type ApiResponse } from './support/api';

// Issue 10 review, findings 4 and 5, through the public API: regular expressions cannot freeze the
// coordinator, and no expression result can nest deeper than the 64 levels the rest of podflow
// handles (bindings, edge conditions, the workflow output).

const code = 'def main(args):\n    return {"got": args}\n';
/** An object wrapped `times` times around {}: `times + 1` levels. */
const wrapped = (times: number) => `$reduce([1..${times}], function($a, $i) { { "a": $a } }, {})`;

async function finishedRun(stack: Stack, response: ApiResponse): Promise<ApiResponse> {
  expect({ status: response.status, body: response.json }).toEqual({ status: 202, body: expect.objectContaining({ id: expect.any(String) }) });
  const id = response.json.id as string;
  return eventually(async () => {
    const run = await call(stack, 'GET', `/v1/runs/${id}`);
    return ['succeeded', 'failed', 'canceled'].includes(run.json?.status) ? run : undefined;
  }, `run ${id} to finish`, 90_000);
}

describe('expressions (issue 10 review, findings 4 and 5)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack?.stop());
  afterEach(() => expectHealthy(stack));

  it('evaluates a regular expression that backtracks catastrophically in JavaScript at once, and refuses backreferences at submission', async () => {
    // With JavaScript's engine 25 "a"s blocked the coordinator for seconds, each one more doubling it.
    const redos = `$match("${'a'.repeat(40)}!", /(a+)+$/)`;
    const run = await finishedRun(stack, await call(stack, 'POST', '/v1/runs', { body: { workflow: { id: 'redos', nodes: [{ id: 'a', language: 'python', code, inputs: { x: redos, y: '$contains("abc", /B/i)' } }] } } }));
    expect({ status: run.json.status, output: run.json.nodes.a.output }).toEqual({ status: 'succeeded', output: { got: { y: true } } });
    const backreference = await call(stack, 'POST', '/v1/runs', { body: { workflow: { id: 'backref', nodes: [{ id: 'a', language: 'python', code, inputs: { x: '$match("aa", /(a)\\1/)' } }] } } });
    expect({ status: backreference.status, code: backreference.json?.error?.code, message: backreference.json?.error?.message }).toEqual({
      status: 400,
      code: 'INVALID_WORKFLOW',
      message: expect.stringContaining('backreferences (\\1, \\k<name>) and lookaround'),
    });
  });

  it('fails a binding nested deeper than 64 levels with INPUT_BINDING_FAILED, on a first node and downstream, and runs one 64 levels deep', async () => {
    const first = await finishedRun(stack, await call(stack, 'POST', '/v1/runs', { body: { workflow: { id: 'deep-first', nodes: [{ id: 'a', language: 'python', code, inputs: { x: wrapped(3000) } }] } } }));
    expect({ status: first.json.status, error: first.json.error }).toEqual({
      status: 'failed',
      error: expect.objectContaining({ code: 'INPUT_BINDING_FAILED', nodeId: 'a', message: expect.stringMatching(/input binding "x" of node "a".*nested deeper than 64 levels.*MAX_JSON_DEPTH/) }),
    });
    // Downstream, the binding is evaluated while a result is applied: it used to throw there on every delivery.
    const downstream = await finishedRun(
      stack,
      await call(stack, 'POST', '/v1/runs', {
        body: { workflow: { id: 'deep-downstream', nodes: [{ id: 'a', language: 'python', code }, { id: 'b', language: 'python', code, inputs: { x: wrapped(3000) } }], edges: [{ from: 'a', to: 'b' }] } },
      }),
    );
    expect({ status: downstream.json.status, a: downstream.json.nodes.a.status, b: downstream.json.nodes.b.error?.code }).toEqual({ status: 'failed', a: 'succeeded', b: 'INPUT_BINDING_FAILED' });
    const depthOf = 'def depth(v):\n    return 1 + max([depth(x) for x in v.values()] or [0]) if isinstance(v, dict) else 0\n\ndef main(args):\n    return {"depth": depth(args["x"])}\n';
    const deepest = await finishedRun(stack, await call(stack, 'POST', '/v1/runs', { body: { workflow: { id: 'deep-ok', nodes: [{ id: 'a', language: 'python', code: depthOf, inputs: { x: wrapped(63) } }] } } }));
    expect({ status: deepest.json.status, output: deepest.json.nodes.a.output }).toEqual({ status: 'succeeded', output: { depth: 64 } });
  });

  it('fails an edge condition and a workflow output nested deeper than 64 levels with INPUT_BINDING_FAILED', async () => {
    const nodes = [{ id: 'a', language: 'python', code }, { id: 'b', language: 'python', code }];
    const edge = await finishedRun(stack, await call(stack, 'POST', '/v1/runs', { body: { workflow: { id: 'deep-when', nodes, edges: [{ from: 'a', to: 'b', when: wrapped(100) }] } } }));
    expect(edge.json.error).toMatchObject({ code: 'INPUT_BINDING_FAILED', message: expect.stringMatching(/"when" of edge a→b .*MAX_JSON_DEPTH/) });
    const output = await finishedRun(stack, await call(stack, 'POST', '/v1/runs', { body: { workflow: { id: 'deep-output', output: `{ "x": ${wrapped(100)} }`, nodes: [nodes[0]] } } }));
    expect(output.json.error).toMatchObject({ code: 'INPUT_BINDING_FAILED', message: expect.stringMatching(/^workflow output: .*MAX_JSON_DEPTH/) });
  });
});
