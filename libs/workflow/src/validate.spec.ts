import { PodflowError } from '@podflow/protocol';
import { InvalidWorkflowError, formatIssue } from './errors';
import { DEFAULT_WORKFLOW_LIMITS, type ValidationIssue } from './types';
import { workflowSchema } from './schema';
import { MAX_INPUT_SCHEMAS, parseWorkflow, validateWorkflow } from './validate';

const node = (id: string, extra: Record<string, unknown> = {}) => ({ id, language: 'python', code: 'def main(args): return {}', ...extra });

/** Every issue of a definition as `<where> <path>: <message>` lines. */
function issuesOf(source: string | object, limits = DEFAULT_WORKFLOW_LIMITS): string[] {
  const result = validateWorkflow(source, limits);
  expect(result.workflow).toBeUndefined();
  return result.issues.map(formatIssue);
}

describe('parseWorkflow', () => {
  const yaml = `
id: invoice-report
nodes:
  - id: load
    type: code
    language: python
    code: |
      def main(args): return {"rows": [1, 2, 3]}
  - id: report
    language: typescript
    dependencies: ["dayjs@1.11.13"]
    inputs: { rows: "nodes.load.output.rows" }
    timeout: 20s
    retries: { max: 2, backoff: exponential, delay: 1s }
    resources: { cpu: 500m, memory: 256Mi }
    outputs: { total: integer }
    code: |
      export function main({ rows }: { rows: number[] }) { return { total: rows.length } }
  - { id: alert, type: code, language: python, code: "def main(args): return {'seen': args['error']['code']}" }
edges:
  - { from: load, to: report, when: "$count(nodes.load.output.rows) > 0" }
  - { from: report, to: alert, on: failure }
`;

  it('parses the DESIGN.md example and normalises it', () => {
    const workflow = parseWorkflow(yaml);
    expect(workflow.id).toBe('invoice-report');
    expect(workflow.timeoutMs).toBe(DEFAULT_WORKFLOW_LIMITS.defaultRunTimeoutMs);
    expect(workflow.nodes[0]).toEqual({
      id: 'load',
      type: 'code',
      language: 'python',
      code: 'def main(args): return {"rows": [1, 2, 3]}\n',
      dependencies: [],
      timeoutMs: DEFAULT_WORKFLOW_LIMITS.defaultNodeTimeoutMs,
      retries: { max: 0, backoff: 'exponential', delayMs: 1000 },
      network: false,
    });
    expect(workflow.nodes[1]).toMatchObject({
      inputs: { rows: 'nodes.load.output.rows' },
      dependencies: ['dayjs@1.11.13'],
      timeoutMs: 20_000,
      retries: { max: 2, backoff: 'exponential', delayMs: 1000 },
      resources: { cpu: '500m', memory: '256Mi' },
      outputs: { total: 'integer' },
    });
    expect(workflow.edges).toEqual([
      { from: 'load', to: 'report', on: 'success', when: '$count(nodes.load.output.rows) > 0' },
      { from: 'report', to: 'alert', on: 'failure' },
    ]);
  });

  it('accepts JSON text and plain objects with the same result', () => {
    const fromYaml = parseWorkflow(yaml);
    expect(parseWorkflow(JSON.stringify(yamlObject()))).toEqual(fromYaml);
    expect(parseWorkflow(yamlObject())).toEqual(fromYaml);
  });

  function yamlObject(): object {
    return {
      id: 'invoice-report',
      nodes: [
        { id: 'load', type: 'code', language: 'python', code: 'def main(args): return {"rows": [1, 2, 3]}\n' },
        {
          id: 'report',
          language: 'typescript',
          dependencies: ['dayjs@1.11.13'],
          inputs: { rows: 'nodes.load.output.rows' },
          timeout: 20,
          retries: { max: 2, backoff: 'exponential', delay: 1 },
          resources: { cpu: '500m', memory: '256Mi' },
          outputs: { total: 'integer' },
          code: 'export function main({ rows }: { rows: number[] }) { return { total: rows.length } }\n',
        },
        { id: 'alert', type: 'code', language: 'python', code: "def main(args): return {'seen': args['error']['code']}" },
      ],
      edges: [
        { from: 'load', to: 'report', when: '$count(nodes.load.output.rows) > 0' },
        { from: 'report', to: 'alert', on: 'failure' },
      ],
    };
  }

  it('throws InvalidWorkflowError listing every issue, one per line', () => {
    let caught: unknown;
    try {
      parseWorkflow({ id: 'wf', nodes: [node('a', { language: 'ruby' }), node('a')] });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidWorkflowError);
    expect(caught).toBeInstanceOf(PodflowError);
    const error = caught as InvalidWorkflowError;
    expect(error.code).toBe('INVALID_WORKFLOW');
    expect(error.retryable).toBe(false);
    expect((error.details?.issues as ValidationIssue[]).length).toBe(2);
    expect(error.message.split('\n')).toEqual([
      'workflow "wf" is invalid (2 issues):',
      'node "a" nodes[0].language: must be one of python, typescript, javascript, got "ruby"',
      'node "a" nodes[1].id: duplicate node id "a" (already used by nodes[0]): node ids must be unique',
    ]);
  });

  it('accepts cpu given as a number and durations given as seconds', () => {
    const workflow = parseWorkflow({ id: 'wf', timeout: 90, nodes: [node('a', { resources: { cpu: 1 }, timeout: 1.5 })] });
    expect(workflow.timeoutMs).toBe(90_000);
    expect(workflow.nodes[0]).toMatchObject({ resources: { cpu: '1' }, timeoutMs: 1500 });
  });
});

describe('validateWorkflow issues', () => {
  it('types bound inputs with inputTypes, and refuses a type for an input that is not bound or a type it does not know', () => {
    const ok = parseWorkflow({ id: 'wf', nodes: [node('a', { inputs: { n: 'inputs.n' }, inputTypes: { n: 'integer' } })] });
    expect(ok.nodes[0]!.inputTypes).toEqual({ n: 'integer' });
    expect(issuesOf({
      id: 'wf',
      nodes: [
        node('a', { inputs: { count: 'inputs.n' }, inputTypes: { cuont: 'integer', count: 'int' } }),
        node('b', { inputTypes: { x: 'string' } }),
      ],
    })).toEqual([
      'node "a" nodes[0].inputTypes.count: must be one of string, number, integer, boolean, object, array, null, any, got "int" (did you mean "integer"?)',
      'node "a" nodes[0].inputTypes.cuont: types "cuont", which is not an input of this node; bound inputs: count (did you mean "count"?)',
      'node "b" nodes[1].inputTypes.x: types "x", which is not an input of this node; declare the binding under inputs (types apply to bound inputs only)',
    ]);
  });

  it('takes a JSON Schema as an input type, and refuses one it cannot compile, one too large, or too many', () => {
    const schema = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[a-z]+$' } } };
    const ok = parseWorkflow({ id: 'wf', nodes: [node('a', { inputs: { row: 'inputs.row', n: 'inputs.n' }, inputTypes: { row: schema, n: 'integer' } })] });
    expect(ok.nodes[0]!.inputTypes).toEqual({ row: schema, n: 'integer' });
    expect(issuesOf({ id: 'wf', nodes: [node('a', { inputs: { row: 'inputs.row', x: 'inputs.x' }, inputTypes: { row: { type: 'no-such-type' }, x: { pattern: '(?=a)' } } })] })).toEqual([
      expect.stringMatching(/^node "a" nodes\[0\]\.inputTypes\.row: the JSON Schema is not a JSON Schema podflow can check: .*type/),
      expect.stringMatching(/^node "a" nodes\[0\]\.inputTypes\.x: the JSON Schema is not a JSON Schema podflow can check: .*RE2 syntax/),
    ]);
    const huge = { enum: Array.from({ length: 2000 }, (_, i) => `value-${i}`) };
    expect(issuesOf({ id: 'wf', nodes: [node('a', { inputs: { v: 'inputs.v' }, inputTypes: { v: huge } })] })).toEqual([
      expect.stringMatching(/^node "a" nodes\[0\]\.inputTypes\.v: the JSON Schema is \d+ bytes of JSON; a schema may have at most 16384$/),
    ]);
    const many = Array.from({ length: MAX_INPUT_SCHEMAS + 1 }, (_, i) => node(`n${i}`, { inputs: { v: 'inputs.v' }, inputTypes: { v: { type: 'string', maxLength: i + 1 } } }));
    expect(issuesOf({ id: 'wf', nodes: many })).toEqual([
      `node "n${MAX_INPUT_SCHEMAS}" nodes[${MAX_INPUT_SCHEMAS}].inputTypes.v: is one JSON Schema too many: a definition may declare at most ${MAX_INPUT_SCHEMAS} distinct ones; reuse a schema, or use a type name`,
    ]);
  });

  it('reports a cycle with its path', () => {
    const source = { id: 'wf', nodes: [node('a'), node('b'), node('c')], edges: [{ from: 'a', to: 'b' }, { from: 'b', to: 'c' }, { from: 'c', to: 'a' }] };
    expect(issuesOf(source)).toEqual(['edge c→a edges[2]: closes the cycle a → b → c → a: a workflow must be acyclic; remove or reverse one of these edges']);
  });

  it('reports an unknown edge endpoint with the closest id, or the known ids', () => {
    const source = { id: 'wf', nodes: [node('load'), node('report')], edges: [{ from: 'load', to: 'reprot' }, { from: 'zzz', to: 'report' }] };
    expect(issuesOf(source)).toEqual([
      'edge load→reprot edges[0].to: unknown node "reprot" (did you mean "report"?)',
      'edge zzz→report edges[1].from: unknown node "zzz"; known nodes: load, report',
    ]);
  });

  it('bounds what a definition with thousands of bad edges costs: hints for the first 20 unknown ends, the first 100 issues in the 400', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => `n${i}`);
    const source = { id: 'wf', nodes: ids.map((id) => node(id)), edges: ids.map((id, i) => ({ from: `q${i}`, to: id })) };
    const issues = issuesOf(source);
    expect(issues).toHaveLength(2000);
    expect(issues[19]).toBe('edge q19→n19 edges[19].from: unknown node "q19" (did you mean "n19"?)');
    expect(issues[20]).toBe('edge q20→n20 edges[20].from: unknown node "q20"; known nodes: n0, n1, n2, n3, n4, n5, n6, n7, n8, n9, ...');
    const error = (() => {
      try {
        parseWorkflow(source);
      } catch (thrown) {
        return thrown as InvalidWorkflowError;
      }
      throw new Error('the definition was accepted');
    })();
    expect(error.message.split('\n')[0]).toBe('workflow "wf" is invalid (2000 issues; the first 100 follow):');
    expect(error.message.split('\n')).toHaveLength(101);
    expect((error.details as { issues: unknown[] }).issues).toHaveLength(100);
    expect(error.issues).toHaveLength(2000);
  });

  it('gives at most 20 hints per validation, whatever asks for them, and lists at most 10 names in a message', () => {
    const inputs = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`input${i}`, 'inputs.x']));
    const inputTypes = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`inptu${i}`, 'string']));
    const issues = issuesOf({ id: 'wf', nodes: [node('a', { inputs, inputTypes })] });
    expect(issues).toHaveLength(30);
    expect(issues[0]).toBe('node "a" nodes[0].inputTypes.inptu0: types "inptu0", which is not an input of this node; bound inputs: input0, input1, input2, input3, input4, input5, input6, input7, input8, input9, ... (did you mean "input0"?)');
    expect(issues.filter((issue) => issue.includes('did you mean')).length).toBe(20);
    expect(issues[29]).toBe('node "a" nodes[0].inputTypes.inptu29: types "inptu29", which is not an input of this node; bound inputs: input0, input1, input2, input3, input4, input5, input6, input7, input8, input9, ...');
  });

  it('suggests nothing for a word longer than any identifier (its edit distance would cost its length squared)', () => {
    const long = `${'x'.repeat(70)}`;
    expect(issuesOf({ id: 'wf', nodes: [node(long.slice(0, 64))], edges: [{ from: long, to: long.slice(0, 64) }] })).toEqual([
      `edge ${long}→${long.slice(0, 64)} edges[0].from: unknown node "${long}"; known nodes: ${long.slice(0, 64)}`,
    ]);
    expect(issuesOf({ id: 'wf', nodes: [node(`${long.slice(0, 63)}y`)], edges: [{ from: long.slice(0, 64), to: `${long.slice(0, 63)}y` }] })[0]).toContain(`(did you mean "${long.slice(0, 63)}y"?)`);
  });

  it('reports duplicate ids, self-loops and duplicate edges', () => {
    const source = {
      id: 'wf',
      nodes: [node('a'), node('b'), node('a')],
      edges: [{ from: 'a', to: 'b' }, { from: 'a', to: 'b', on: 'success' }, { from: 'b', to: 'b' }],
    };
    expect(issuesOf(source)).toEqual([
      'node "a" nodes[2].id: duplicate node id "a" (already used by nodes[0]): node ids must be unique',
      'edge a→b edges[1]: duplicates edges[0] (same from, to and on): remove one of them',
      'edge b→b edges[2]: connects "b" to itself: an edge must join two different nodes',
    ]);
  });

  it('reports JSONata syntax errors in node inputs, edge conditions and the workflow output', () => {
    const source = {
      id: 'wf',
      output: '{ "a": }',
      nodes: [node('a', { inputs: { rows: 'nodes.a.output.rows +' } }), node('b')],
      edges: [{ from: 'a', to: 'b', when: '$count(' }],
    };
    expect(issuesOf(source)).toEqual([
      'workflow "wf" output: JSONata syntax error at position 8: The symbol "}" cannot be used as a unary operator (in "{ \\"a\\": }")',
      'node "a" nodes[0].inputs.rows: JSONata syntax error at position 21: Unexpected end of expression (in "nodes.a.output.rows +")',
      'edge a→b edges[0].when: JSONata syntax error at position 7: Expected ")" before end of expression (in "$count(")',
    ]);
  });

  it('reports an unknown language with the allowed ones and a hint for shorthands', () => {
    expect(issuesOf({ id: 'wf', nodes: [node('a', { language: 'ruby' }), node('b', { language: 'ts' })] })).toEqual([
      'node "a" nodes[0].language: must be one of python, typescript, javascript, got "ruby"',
      'node "b" nodes[1].language: must be one of python, typescript, javascript, got "ts" (did you mean "typescript"?)',
    ]);
  });

  it('reports empty and missing code', () => {
    expect(issuesOf({ id: 'wf', nodes: [node('a', { code: '  \n ' }), { id: 'b', language: 'python' }] })).toEqual([
      'node "a" nodes[0].code: is empty: write the node source with a main(args) function',
      'node "b" nodes[1].code: is required: put the source with a main(args) function in `code`',
    ]);
  });

  it('reports oversized code with its size and the limit', () => {
    const limits = { ...DEFAULT_WORKFLOW_LIMITS, maxCodeBytes: 10 };
    expect(issuesOf({ id: 'wf', nodes: [node('a', { code: 'é'.repeat(6) })] }, limits)).toEqual([
      'node "a" nodes[0].code: is 12 bytes; the limit is 10 bytes: move data into inputs or files and keep the code small',
    ]);
  });

  it('reports bad timeouts: unparseable, zero, and above the limits', () => {
    const source = {
      id: 'wf',
      timeout: '100h',
      nodes: [node('a', { timeout: '20 seconds' }), node('b', { timeout: '2h' }), node('c', { timeout: 0 })],
    };
    expect(issuesOf(source)).toEqual([
      'workflow "wf" timeout: 100h is above the limit of 24h (longest run timeout); use a shorter timeout',
      'node "a" nodes[0].timeout: "20 seconds" is not a valid duration: use a number of seconds or a string like 500ms, 20s, 5m, 1h or 1m30s',
      'node "b" nodes[1].timeout: 2h is above the limit of 1h (longest node timeout); use a shorter timeout',
      'node "c" nodes[2].timeout: must be greater than 0, got 0s',
    ]);
  });

  it('reports unknown fields at every level with a suggestion', () => {
    const source = { id: 'wf', nodez: [], nodes: [node('a', { dependecies: [], retries: { max: 1, dealy: '1s' } })], edges: [] };
    expect(issuesOf(source)).toEqual([
      'node "a" nodes[0].retries.dealy: unknown field "dealy" (did you mean "delay"?); allowed fields: max, backoff, delay',
      'node "a" nodes[0].dependecies: unknown field "dependecies" (did you mean "dependencies"?); allowed fields: id, type, language, code, inputs, inputTypes, dependencies, timeout, retries, resources, outputs, network',
      'workflow "wf" nodez: unknown field "nodez" (did you mean "nodes"?); allowed fields: id, name, description, output, timeout, nodes, edges',
    ]);
  });

  it('reports YAML syntax errors with line and column', () => {
    expect(issuesOf('id: wf\nnodes:\n  - id: a\n    code: "abc\n')).toEqual(['workflow line 5, column 1: YAML syntax error: Missing closing "quote']);
    expect(issuesOf('id: wf\nid: again\nnodes: []\n')).toEqual(['workflow line 2, column 1: YAML syntax error: Map keys must be unique; "id" is repeated']);
  });

  it('reports bad node and workflow ids', () => {
    expect(issuesOf({ id: 'w f', nodes: [node('a.b'), node('1x')] })).toEqual([
      'workflow "w f" id: must start with a letter or digit, then letters, digits, _ or - (at most 128 characters)',
      'node "a.b" nodes[0].id: must start with a letter or _, then letters, digits, _ or - (at most 64 characters, no dots)',
      'node "1x" nodes[1].id: must start with a letter or _, then letters, digits, _ or - (at most 64 characters, no dots)',
    ]);
  });

  it('reports retries out of range', () => {
    const source = { id: 'wf', nodes: [node('a', { retries: { max: 11 } }), node('b', { retries: { max: -1, backoff: 'linear' } }), node('c', { retries: {} })] };
    expect(issuesOf(source)).toEqual([
      'node "a" nodes[0].retries.max: must be at most 10 (the retry limit)',
      'node "b" nodes[1].retries.max: must be 0 or more',
      'node "b" nodes[1].retries.backoff: must be one of fixed, exponential, got "linear"',
      'node "c" nodes[2].retries.max: is required: say how many retries, e.g. max: 2',
    ]);
  });

  it('reports bad specs: node type, resources, outputs, network, non-string expressions, edge kind', () => {
    const source = {
      id: 'wf',
      nodes: [
        node('a', { type: 'http', resources: { cpu: 'lots', memory: '256MB' }, outputs: { x: 'str' }, network: 'yes', inputs: { n: 5 } }),
        node('b'),
      ],
      edges: [{ from: 'a', to: 'b', on: 'error' }, { from: 'a' }],
    };
    expect(issuesOf(source)).toEqual([
      'node "a" nodes[0].type: must be "code" (the only node type), got "http"',
      'node "a" nodes[0].inputs.n: must be a string, got number (a JSONata expression is written as a string; quote it in YAML)',
      'node "a" nodes[0].resources.cpu: "lots" is not a valid quantity: use cores or millicores like 1, 0.5 or 500m',
      'node "a" nodes[0].resources.memory: "256MB" is not a valid quantity: use bytes or a suffix like 256Mi, 1Gi (binary) or 500M (decimal)',
      'node "a" nodes[0].outputs.x: must be one of string, number, integer, boolean, object, array, null, any, got "str" (did you mean "string"?)',
      'node "a" nodes[0].network: must be a boolean, got string',
      'edge a→b edges[0].on: must be one of success, failure, always, got "error"',
      'edges[1] edges[1].to: is required: name the target node',
    ]);
  });

  it('reports an empty definition, a non-mapping and an empty node list', () => {
    expect(issuesOf('')).toEqual(['workflow (source): is empty: write a YAML or JSON definition with `id` and `nodes`']);
    expect(issuesOf('- 1\n- 2\n')).toEqual(['workflow (root): must be a mapping with at least `id` and `nodes`']);
    expect(issuesOf({ id: 'wf', nodes: [] })).toEqual(['workflow "wf" nodes: must contain at least one node']);
    expect(issuesOf({ nodes: [node('a')] })).toEqual(['workflow id: is required: give it an id']);
  });

  it('enforces the node count and run timeout limits', () => {
    const limits = { ...DEFAULT_WORKFLOW_LIMITS, maxNodes: 2, maxRunTimeoutMs: 60_000 };
    expect(issuesOf({ id: 'wf', timeout: '2m', nodes: [node('a'), node('b'), node('c')] }, limits)).toEqual([
      'workflow "wf" timeout: 2m is above the limit of 1m (longest run timeout); use a shorter timeout',
      'workflow "wf" nodes: has 3 nodes; the limit is 2: split it into smaller workflows',
    ]);
  });

  it('does not report cycles through unknown nodes twice', () => {
    const source = { id: 'wf', nodes: [node('a'), node('b')], edges: [{ from: 'a', to: 'b' }, { from: 'b', to: 'a' }, { from: 'b', to: 'c' }] };
    expect(issuesOf(source)).toEqual([
      'edge b→c edges[2].to: unknown node "c"; known nodes: a, b',
      'edge b→a edges[1]: closes the cycle a → b → a: a workflow must be acyclic; remove or reverse one of these edges',
    ]);
  });
});

describe('the definition schema, built once per set of limits', () => {
  it('is the same schema for equal limits and another for other limits', () => {
    expect(workflowSchema({ ...DEFAULT_WORKFLOW_LIMITS })).toBe(workflowSchema(DEFAULT_WORKFLOW_LIMITS));
    expect(workflowSchema({ ...DEFAULT_WORKFLOW_LIMITS, maxRetries: 3 })).not.toBe(workflowSchema(DEFAULT_WORKFLOW_LIMITS));
  });

  it('honours each set of limits when several are in use', () => {
    const definition = { id: 'w', nodes: [node('a', { retries: { max: 5 } })] };
    expect(parseWorkflow(definition).nodes[0]!.retries.max).toBe(5);
    expect(issuesOf(definition, { ...DEFAULT_WORKFLOW_LIMITS, maxRetries: 3 })).toEqual([expect.stringContaining('must be at most 3')]);
    expect(parseWorkflow(definition).nodes[0]!.retries.max).toBe(5);
  });

  it('does not follow later changes to the limits object it was first built from', () => {
    const first = { ...DEFAULT_WORKFLOW_LIMITS, maxCodeBytes: 4096 };
    workflowSchema(first);
    first.maxCodeBytes = 1;
    expect(parseWorkflow({ id: 'w', nodes: [node('a')] }, { ...DEFAULT_WORKFLOW_LIMITS, maxCodeBytes: 4096 }).nodes).toHaveLength(1);
  });

  it('gives every parse its own default lists: one workflow changing its own cannot reach the next', () => {
    const first = workflowSchema(DEFAULT_WORKFLOW_LIMITS).parse({ id: 'w', nodes: [node('a')] });
    first.edges.push({ from: 'a', to: 'b', on: 'success' });
    first.nodes[0]!.dependencies.push('left-behind');
    const second = workflowSchema(DEFAULT_WORKFLOW_LIMITS).parse({ id: 'w', nodes: [node('a')] });
    expect(second.edges).toEqual([]);
    expect(second.nodes[0]!.dependencies).toEqual([]);
  });
});
