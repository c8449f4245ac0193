import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunnerResponse } from '@podflow/protocol';
import { createWorkdir, removeWorkdirs, respond } from './testing/run-runner';

// Python-only parts of the Code node contract: the keyword calling convention, JSON-string
// returns, SystemExit and Python's own output types.
const run = (code: string, options?: Parameters<typeof respond>[2]) => respond('python', code, options);
const errorOf = (response: RunnerResponse) => (response.ok ? undefined : response.error);

afterEach(removeWorkdirs);

describe('python runner: calling main', () => {
  it.each([
    ['main(args) gets the whole object', 'def main(args):\n    return {"keys": sorted(args)}', { keys: ['name', 'other'] }],
    ['keyword parameters take defaults when missing', 'def main(name, count=1):\n    return {"s": name * count}', { s: 'ab' }],
    ['keyword-only parameters are filled by name', 'def main(*, name):\n    return {"s": name}', { s: 'ab' }],
    ['**kwargs receives the remaining keys', 'def main(name, **rest):\n    return {"rest": rest}', { rest: { other: 1 } }],
    ['zero parameters call main()', 'def main():\n    return {"called": True}', { called: true }],
    ['a JSON string that decodes to an object is accepted', 'import json\ndef main(args):\n    return json.dumps({"from": "string"})', { from: 'string' }],
    ['the module is named main, not __main__', 'def main(args):\n    return {"name": __name__}', { name: 'main' }],
    ['tuples become lists', 'def main(args):\n    return {"pair": (1, "a")}', { pair: [1, 'a'] }],
    // Parameters of plain functions are read from the code object (no inspect import); these pin that reading.
    ['positional-only parameters are filled by name, defaults kept', 'def main(name, count=2, /, *, sep="-"):\n    return {"s": sep.join([name] * count)}', { s: 'ab-ab' }],
    ['*args is left empty, keyword-only defaults apply', 'def main(name, *more, flag=True, **rest):\n    return {"more": list(more), "flag": flag, "rest": rest}', { more: [], flag: true, rest: { other: 1 } }],
    ['a keyword-only args receives the whole object', 'def main(*, args):\n    return {"keys": sorted(args)}', { keys: ['name', 'other'] }],
    ['a functools.wraps decorator binds by the wrapped signature', 'import functools\ndef deco(f):\n    @functools.wraps(f)\n    def inner(*a, **k):\n        return f(*a, **k)\n    return inner\n@deco\ndef main(name):\n    return {"s": name}', { s: 'ab' }],
    ['a callable object is called with args', 'class Main:\n    def __call__(self, args):\n        return {"n": len(args)}\nmain = Main()', { n: 2 }],
    ['an async main is awaited', 'import asyncio\nasync def main(name):\n    await asyncio.sleep(0)\n    return {"s": name}', { s: 'ab' }],
    ['an awaitable returned by a plain main is awaited', 'async def work(name):\n    return {"s": name}\ndef main(name):\n    return work(name)', { s: 'ab' }],
  ])('%s', async (_name, code, output) => {
    expect(await run(code, { args: { name: 'ab', other: 1 } })).toMatchObject({ ok: true, output });
  });

  it('fails with INPUT_BINDING_FAILED naming a missing required parameter and the available keys', async () => {
    const error = errorOf(await run('def main(name, count):\n    return {}', { args: { name: 'x', inputs: {} } }));
    expect(error).toMatchObject({ code: 'INPUT_BINDING_FAILED' });
    expect(error?.message).toMatch(/parameter "count" is required/);
    expect(error?.message).toMatch(/available keys: "name", "inputs"/);
  });

  it('imports dependency layers from PODFLOW_PYTHONPATH (-I ignores PYTHONPATH) without writing bytecode', async () => {
    const layer = createWorkdir();
    writeFileSync(join(layer, 'layerdep.py'), 'VALUE = 42\n');
    const response = await respond('python', 'import layerdep\ndef main(args):\n    return {"v": layerdep.VALUE}', {
      env: { PATH: process.env.PATH, PODFLOW_PYTHONPATH: layer },
    });
    expect(response).toMatchObject({ ok: true, output: { v: 42 }, files: [] });
  });

  it('supports dataclasses defined in the user module', async () => {
    const code = 'from __future__ import annotations\nfrom dataclasses import dataclass, asdict\n@dataclass\nclass P:\n    x: int\ndef main(args):\n    return {"p": asdict(P(1))}';
    expect(await run(code)).toMatchObject({ ok: true, output: { p: { x: 1 } } });
  });
});

describe('python runner: failures', () => {
  it('reports SystemExit as CODE_EXECUTION_FAILED', async () => {
    const error = errorOf(await run('import sys\ndef main(args):\n    sys.exit(3)'));
    expect(error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', type: 'SystemExit', message: expect.stringMatching(/main called exit\(\)/) });
  });

  it('reports a syntax error with its location', async () => {
    const error = errorOf(await run('def main(args):\n    return {"a": }\n'));
    expect(error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', type: 'SyntaxError' });
    expect(error?.stack).toContain('File "main.py", line 2');
    expect(error?.stack).not.toContain('podflow_runner');
  });

  it('keeps chained exceptions, each reduced to user frames', async () => {
    const code = 'def main(args):\n    try:\n        {}["k"]\n    except KeyError as e:\n        raise ValueError("wrapped") from e';
    const error = errorOf(await run(code));
    expect(error).toMatchObject({ type: 'ValueError', message: 'wrapped' });
    expect(error?.stack).toMatch(/KeyError: 'k'[\s\S]*direct cause[\s\S]*ValueError: wrapped$/);
    expect(error?.stack).not.toContain('podflow_runner');
  });

  it('reports an exception raised at module level', async () => {
    const error = errorOf(await run('import json\nraise TypeError("at import")\ndef main(args):\n    return {}'));
    expect(error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', type: 'TypeError', message: 'at import' });
    expect(error?.stack).toContain('File "main.py", line 2, in <module>');
  });

  it.each([
    ['a set', 'return {"tags": {"a"}}', /output\.tags is a set.*sorted\(x\)/],
    ['a datetime', 'import datetime\n    return {"at": datetime.datetime(2024, 1, 1)}', /output\.at is a datetime\.datetime.*isoformat\(\)/],
    ['bytes', 'return {"raw": b"x"}', /output\.raw is a bytes/],
    ['a non-string key', 'return {"m": {1: "a"}}', /output\.m has a key 1 of type int.*str\(key\)/],
    ['a circular reference', 'd = {}\n    d["self"] = d\n    return d', /output\.self is a circular reference/],
    ['None', 'return None', /got NoneType \(did you forget return\?\)/],
    ['a string that is not a JSON object', 'return "[1, 2]"', /str that is not a JSON object/],
  ])('rejects %s with OUTPUT_INVALID', async (_name, body, message) => {
    const error = errorOf(await run(`def main(args):\n    ${body}`));
    expect(error).toMatchObject({ code: 'OUTPUT_INVALID', message: expect.stringMatching(message) });
  });

  it('does not let threads left running keep the runner alive', async () => {
    const code = 'import threading, time\ndef main(args):\n    threading.Thread(target=time.sleep, args=(60,)).start()\n    return {"done": True}';
    expect(await run(code)).toMatchObject({ ok: true, output: { done: true } });
  });
});
