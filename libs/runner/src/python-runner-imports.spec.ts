import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { RunnerResponse } from '@podflow/protocol';
import { runnerAssets } from './assets';
import { createWorkdir, PYTHON, removeWorkdirs, respond } from './testing/run-runner';

// The Python runner starts without json, re and linecache (each brings re and enum: ~4 ms of CPU
// of every sandbox start). What stands in for them must give exactly what they give.

const run = (code: string, options?: Parameters<typeof respond>[2]) => respond('python', code, options);
const errorOf = (response: RunnerResponse) => (response.ok ? undefined : response.error);

afterEach(removeWorkdirs);

/**
 * For each input, what the runner's function and json's give: ["ok", repr(value)] or
 * ["error", exception type, message]; pairs that differ are returned (none expected).
 */
function differences(ours: string, theirs: string, inputs: unknown[], { decode = false } = {}): unknown[] {
  const script = `
import json, sys
sys.path.insert(0, ${JSON.stringify(dirname(runnerAssets().python))})
import podflow_runner as r

def outcome(f, x):
    try:
        return ["ok", repr(f(x))]
    except Exception as exc:
        return ["error", type(exc).__name__, str(exc)]

inputs = json.loads(sys.stdin.read())
if ${decode ? 'True' : 'False'}:
    inputs = [x.encode("utf-8", "surrogatepass") if isinstance(x, str) else x for x in inputs]
print(json.dumps([[x if isinstance(x, str) else repr(x), a, b] for x in inputs for a, b in [(outcome(${ours}, x), outcome(${theirs}, x))] if a != b]))
`;
  return JSON.parse(execFileSync(PYTHON, ['-I', '-B', '-c', script], { input: JSON.stringify(inputs), encoding: 'utf8' })) as unknown[];
}

function evaluate(expression: string): unknown {
  const script = `import json, sys\nsys.path.insert(0, ${JSON.stringify(dirname(runnerAssets().python))})\nimport podflow_runner as r\nprint(json.dumps(${expression}))`;
  return JSON.parse(execFileSync(PYTHON, ['-I', '-B', '-c', script], { encoding: 'utf8' }));
}

const TEXTS = [
  '{"a": 1, "b": [true, false, null], "c": "\\u00e9\\ud83d\\ude00 \u00e9", "d": 1.5e300, "e": -0.0, "f": 123456789012345678901234567890}',
  '  \n\t{"spaced": {}}\r\n ',
  '[]',
  '"a string"',
  '12',
  'NaN',
  '[Infinity, -Infinity, 1e999]',
  '{"dup": 1, "dup": 2}',
  '{"a": 1} trailing',
  '{"a": 1}{"b": 2}',
  '',
  '   ',
  '{"a": }',
  '{"a": "\\ud800"}',
  '{"a": "control \u0001 char"}',
  '\ufeff{"bom": true}',
  '\u00a0{"nbsp": 1}',
  `[${'['.repeat(100)}${']'.repeat(100)}]`,
  `[${'['.repeat(100_000)}${']'.repeat(100_000)}]`,
];

describe('python runner: JSON without the json module', () => {
  it('uses the C accelerator on this interpreter (not the fallback)', () => {
    expect(evaluate('[r._FAST_LOADS is not None, r._FAST_DUMPS is not None, r._FAST_QUOTE_ASCII is not None]')).toEqual([true, true, true]);
  });

  it('reads texts and bytes exactly as json.loads does: the same value, or the same error', () => {
    // The accelerator itself, on the texts json accepts (a BOM and bytes are json's to decode).
    const valid = TEXTS.filter((text, index) => index < 8 && !text.startsWith('\ufeff'));
    expect(differences('r._FAST_LOADS', 'json.loads', valid)).toEqual([]);
    expect(differences('r.loads_json', 'json.loads', TEXTS)).toEqual([]);
    expect(differences('r.loads_json', 'json.loads', TEXTS, { decode: true })).toEqual([]);
  });

  it('writes values exactly as json.dumps(ensure_ascii=False, separators=(",", ":")) does, with and without NaN', () => {
    const values = [
      '{"a": [1, 2.5, -0.0, 10**30, True, None, "\\u00e9\\u2028\\"\\\\\\n\\x7f\\ud800"], "b": {}, "c": ""}',
      '{1: "int key", 2.5: "float key", None: "none key", True: "bool key"}',
      '[float("nan")]',
      '[float("inf")]',
      '{"s": {1, 2}}',
      '(lambda d: d.update(me=d) or d)({})',
      '"just a string"',
      '[(1, 2), [3]]',
    ];
    const asValues = (expression: string) => `(lambda x: ${expression}(eval(x)))`;
    expect(differences(asValues('r.dumps_json'), asValues('(lambda v: json.dumps(v, ensure_ascii=False, allow_nan=False, separators=(",", ":")))'), values)).toEqual([]);
    expect(
      differences(asValues('(lambda v: r.dumps_json(v, allow_nan=True))'), asValues('(lambda v: json.dumps(v, ensure_ascii=False, allow_nan=True, separators=(",", ":")))'), values),
    ).toEqual([]);
    expect(differences('r.quote_json', 'json.dumps', ['plain', 'é and \n and " and \\', '\ud83d\ude00'])).toEqual([]);
  });

  it('imports none of json, re, linecache or enum to run a plain node', async () => {
    const response = await run('import sys\ndef main(args):\n    return {"loaded": [m for m in ("json", "re", "linecache", "tokenize", "enum") if m in sys.modules]}');
    expect(response).toMatchObject({ ok: true, output: { loaded: [] } });
  });

  it('gives tracebacks the code\'s own lines, also printed by the code itself and whatever main.py the directory holds', async () => {
    const workdir = createWorkdir();
    writeFileSync(join(workdir, 'main.py'), 'decoy line 1\ndecoy line 2\ndecoy line 3\ndecoy line 4\n');
    const printed = await run('import traceback\ndef main(args):\n    try:\n        1 / 0\n    except ZeroDivisionError:\n        traceback.print_exc()\n    return {}', { workdir });
    expect(printed.logs.stderr).toContain('File "main.py", line 4, in main\n    1 / 0\n');
    const failed = errorOf(await run('import logging\ndef main(args):\n    value = {}\n    return value["missing"]', { workdir }));
    expect(failed?.stack).toContain('File "main.py", line 4, in main\n    return value["missing"]');
    expect(failed?.stack).not.toContain('decoy');
    // Code that uses the finder up without importing linecache, or takes it off sys.meta_path.
    for (const trick of ['import importlib.util\nimportlib.util.find_spec("linecache")', 'import sys\nsys.meta_path[:] = [f for f in sys.meta_path if isinstance(f, type)]']) {
      const tricked = errorOf(await run(`${trick}\ndef main(args):\n    return {}["missing"]`, { workdir }));
      expect(tricked?.stack).toContain('File "main.py", line 4, in main\n    return {}["missing"]');
    }
  });

  it('names a key that is not an identifier in JSON, non-ASCII escaped, in output errors', async () => {
    const error = errorOf(await run('def main(args):\n    return {"k\\n": {"é x": float("nan")}, "ok": 1}'));
    expect(error?.message).toBe('output["k\\n"]["\\u00e9 x"] is NaN: not valid JSON; return None (null) or a string');
  });
});
