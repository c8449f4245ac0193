import { MAX_BINDINGS_PER_NODE, MAX_DISTINCT_EXPRESSIONS } from './expression-volume';
import { validateWorkflow } from './validate';

const bindings = (count: number, text: (i: number) => string) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, text(i)]));
const node = (id: string, inputs?: Record<string, string>) => ({ id, language: 'python', code: 'def main(args): return {}', ...(inputs ? { inputs } : {}) });

describe('expression volume of a definition (counted before any expression is parsed)', () => {
  it(`takes ${MAX_BINDINGS_PER_NODE} input bindings on a node and refuses one more, naming the node and the limit`, () => {
    expect(validateWorkflow({ id: 'w', nodes: [node('a', bindings(MAX_BINDINGS_PER_NODE, (i) => `inputs.k${i}`))] }).issues).toEqual([]);
    expect(validateWorkflow({ id: 'w', nodes: [node('a', bindings(MAX_BINDINGS_PER_NODE + 1, (i) => `inputs.k${i}`))] }).issues).toEqual([
      { where: 'node "a"', path: 'nodes[0].inputs', message: 'has 1001 input bindings; the limit is 1000: bind one larger value (an object of them) instead of each item' },
    ]);
  });

  it('refuses 100,000 bindings at once instead of parsing them (a 1.3 MB request held the coordinator 19 s)', () => {
    const started = Date.now();
    const { issues } = validateWorkflow({ id: 'w', nodes: [node('a', bindings(100_000, (i) => `$lookup(inputs, "k${i}")`))] });
    expect(issues).toEqual([expect.objectContaining({ path: 'nodes[0].inputs', message: expect.stringContaining('has 100000 input bindings') })]);
    // Parsing them took about 5 s here; counting them, milliseconds.
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it(`refuses more than ${MAX_DISTINCT_EXPRESSIONS} distinct expressions in a definition, or more than a MiB of their text`, () => {
    const many = Array.from({ length: 21 }, (_, n) => node(`n${n}`, bindings(1_000, (i) => `inputs.v${n}_${i}`)));
    expect(validateWorkflow({ id: 'w', nodes: many }).issues).toEqual([
      {
        where: 'workflow "w"',
        path: '(root)',
        message: expect.stringMatching(/^holds 21000 distinct expressions of \d+ characters in all; the limits are 20000 expressions and 1048576 characters/),
      },
    ]);
    const long = Array.from({ length: 80 }, (_, n) => node(`n${n}`, { x: `inputs.v${n} & "${'x'.repeat(14_000)}"` }));
    expect(validateWorkflow({ id: 'w', nodes: long }).issues).toEqual([expect.objectContaining({ message: expect.stringMatching(/^holds 80 distinct expressions of 11\d{5} characters/) })]);
  });

  it('counts an expression shared by many nodes once: a 10,000-node fan-out binding the same text passes', () => {
    const nodes = [node('root'), ...Array.from({ length: 9_999 }, (_, i) => node(`leaf${i}`, { v: 'nodes.root.output.value', w: '$count(inputs.items)' }))];
    const edges = nodes.slice(1).map((leaf) => ({ from: 'root', to: leaf.id }));
    expect(validateWorkflow({ id: 'w', nodes, edges }).issues).toEqual([]);
  });
});

describe('expression parsing during one validation', () => {
  it('parses each distinct text once, however many occurrences and however many texts the compile cache holds (cycling 2,500 texts over 100,000 bindings took seconds)', () => {
    // jsonata is called once per parse (compileExpression); the module is the one expressions.ts uses.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const patched = require('./jsonata-patched') as typeof import('./jsonata-patched');
    const parse = jest.spyOn(patched, 'jsonata');
    try {
      const nodes = Array.from({ length: 100 }, (_, n) => node(`n${n}`, bindings(1_000, (i) => `inputs.cycle${(n * 1_000 + i) % 2_500}`)));
      expect(validateWorkflow({ id: 'w', nodes }).issues).toEqual([]);
      // Once each (these texts were never parsed before in this process); 100,000 times before.
      expect(parse.mock.calls.length).toBe(2_500);
    } finally {
      parse.mockRestore();
    }
  });
});
