import { MAX_JSON_DEPTH } from '@podflow/protocol';
import { MAX_DEFINITION_TOKENS, loadDefinitionText } from './definition-source';

describe('loadDefinitionText', () => {
  it('loads YAML and JSON text into plain values', () => {
    expect(loadDefinitionText('id: a\nnodes: [{ id: n, code: "x" }]\n')).toEqual({ value: { id: 'a', nodes: [{ id: 'n', code: 'x' }] }, issues: [] });
    expect(loadDefinitionText('{"id": "a", "n": 1, "1": 2}')).toEqual({ value: { id: 'a', n: 1, '1': 2 }, issues: [] });
  });

  it('reports duplicate keys with line and column, mapping by mapping', () => {
    const { issues } = loadDefinitionText('id: a\nnodes:\n  - id: n\n    code: x\n    id: m\nid: b\n');
    expect(issues).toEqual([
      { where: 'workflow', path: 'line 5, column 5', message: 'YAML syntax error: Map keys must be unique; "id" is repeated' },
      { where: 'workflow', path: 'line 6, column 1', message: 'YAML syntax error: Map keys must be unique; "id" is repeated' },
    ]);
    // A number and a string of the same digits are different keys, as in YAML itself.
    expect(loadDefinitionText('1: a\n"1": b\n').issues).toEqual([]);
  });

  it('refuses a document of more than MAX_DEFINITION_TOKENS tokens before building it', () => {
    const flood = `x: [${'1,'.repeat(MAX_DEFINITION_TOKENS)}1]`;
    expect(loadDefinitionText(flood)).toEqual({
      issues: [{ where: 'workflow', path: '(source)', message: expect.stringContaining(`more than ${MAX_DEFINITION_TOKENS} YAML tokens`) }],
    });
  });

  it('loads a large mapping in one pass over its keys', () => {
    // 12,000 keys: the YAML library's own duplicate check compares each key with every other.
    const keys = Array.from({ length: 12_000 }, (_, i) => `k${i}: ${i}`);
    const loaded = loadDefinitionText(keys.join('\n'));
    expect(Object.keys(loaded.value as object)).toHaveLength(12_000);
    expect(loadDefinitionText([...keys, 'k7: again'].join('\n')).issues).toEqual([
      { where: 'workflow', path: 'line 12001, column 1', message: 'YAML syntax error: Map keys must be unique; "k7" is repeated' },
    ]);
  });

  it('refuses nesting deeper than MAX_JSON_DEPTH below the definition, and survives nesting deeper than the stack', () => {
    const nested = (levels: number) => `x: ${'['.repeat(levels)}${']'.repeat(levels)}`;
    expect(loadDefinitionText(nested(MAX_JSON_DEPTH)).issues).toEqual([]);
    expect(loadDefinitionText(nested(MAX_JSON_DEPTH + 1)).issues).toEqual([
      { where: 'workflow', path: `${`x${'[0]'.repeat(MAX_JSON_DEPTH)}`.slice(0, 80)}…`, message: `nests deeper than ${MAX_JSON_DEPTH} levels of objects and arrays; no field of a definition needs that` },
    ]);
    expect(loadDefinitionText(nested(30_000)).issues).toEqual([{ where: 'workflow', path: expect.any(String), message: expect.stringContaining('Maximum call stack size exceeded') }]);
  });
});
