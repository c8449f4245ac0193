import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Language } from '@podflow/protocol';
import { parseRunnerOutput } from './framing';
import { createWorkdir, removeWorkdirs, respond, runRunner } from './testing/run-runner';

// Behaviour every runner shares, driven by one table: the same scenario in Python and in
// JavaScript (TypeScript runs the JavaScript variant through the type-stripping path too).
const LANGUAGES: Language[] = ['python', 'typescript', 'javascript'];
type Variants = { python: string; node: string };
const pick = (language: Language, variants: Variants): string => (language === 'python' ? variants.python : variants.node);
const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

afterEach(removeWorkdirs);

describe.each(LANGUAGES)('%s runner', (language) => {
  const userFile = language === 'python' ? 'main.py' : language === 'typescript' ? 'main.ts' : 'main.js';
  const run = (variants: Variants, options?: Parameters<typeof respond>[2]) => respond(language, pick(language, variants), options);

  it('calls main with the args object', async () => {
    const response = await run(
      { python: 'def main(args):\n    return {"sum": args["a"] + args["b"]}', node: 'export function main(args) { return { sum: args.a + args.b } }' },
      { args: { a: 1, b: 2 } },
    );
    expect(response).toMatchObject({ ok: true, output: { sum: 3 }, files: [] });
    expect(response.durationMs).toEqual(expect.any(Number));
  });

  it('reads the request from --request <file> as well as from stdin', async () => {
    const response = await run({ python: 'def main(args):\n    return {"via": args["via"]}', node: 'export function main({ via }) { return { via } }' }, { args: { via: 'file' }, requestFile: true });
    expect(response).toMatchObject({ ok: true, output: { via: 'file' } });
  });

  it('fills parameters by name (keyword style / destructuring)', async () => {
    const response = await run(
      { python: 'def main(name, count=1):\n    return {"s": name * count}', node: 'export function main({ name, count = 1 }) { return { s: name.repeat(count) } }' },
      { args: { name: 'ab', count: 2, other: true } },
    );
    expect(response).toMatchObject({ ok: true, output: { s: 'abab' } });
  });

  it('awaits an async main', async () => {
    const response = await run({
      python: 'import asyncio\nasync def main(args):\n    await asyncio.sleep(0.01)\n    return {"waited": True}',
      node: 'export async function main() { await new Promise((r) => setTimeout(r, 10)); return { waited: true } }',
    });
    expect(response).toMatchObject({ ok: true, output: { waited: true } });
  });

  it('captures print/console output instead of mixing it into the response', async () => {
    const response = await run({
      python: 'import sys\ndef main(args):\n    print("to stdout")\n    print("to stderr", file=sys.stderr)\n    sys.stdout.buffer.write(b"bytes\\n")\n    return {}',
      node: 'export function main() { console.log("to stdout"); console.error("to stderr"); process.stdout.write("bytes\\n"); return {} }',
    });
    expect(response).toMatchObject({ ok: true, logs: { stdout: 'to stdout\nbytes\n', stderr: 'to stderr\n', truncated: false } });
  });

  it('keeps only the tail of long logs', async () => {
    const response = await run(
      { python: 'def main(args):\n    for i in range(1000):\n        print("line", i)\n    print("END")\n    return {}', node: 'export function main() { for (let i = 0; i < 1000; i++) console.log("line", i); console.log("END"); return {} }' },
      { limits: { maxLogBytes: 16 } },
    );
    expect(response.logs.truncated).toBe(true);
    expect(response.logs.stdout.endsWith('END\n')).toBe(true);
    expect(Buffer.byteLength(response.logs.stdout)).toBeLessThanOrEqual(16);
  });

  it.each<[string, Variants, RegExp]>([
    ['a top-level list', { python: 'def main(args):\n    return [1, 2]', node: 'export function main() { return [1, 2] }' }, /got (list|an array); wrap it/],
    ['NaN at a nested path', { python: 'def main(args):\n    return {"stats": {"ratio": float("nan")}}', node: 'export function main() { return { stats: { ratio: NaN } } }' }, /output\.stats\.ratio is NaN: not valid JSON; return (None \(null\)|null) or a string/],
    ['a bad value inside a list', { python: 'def main(args):\n    return {"items": [1, 2, {3}]}', node: 'export function main() { return { items: [1, 2, () => 3] } }' }, /output\.items\[2\] is/],
    ['an odd key', { python: 'def main(args):\n    return {"weird key": float("inf")}', node: 'export function main() { return { "weird key": Infinity } }' }, /output\["weird key"\] is/],
    ['a class instance', { python: 'class Point:\n    pass\ndef main(args):\n    return {"p": Point()}', node: 'class Point {}\nexport function main() { return { p: new Point() } }' }, /output\.p is .*Point/],
  ])('rejects %s with OUTPUT_INVALID naming the path', async (_name, variants, message) => {
    const response = await run(variants);
    expect(response).toMatchObject({ ok: false, error: { code: 'OUTPUT_INVALID', message: expect.stringMatching(message) } });
  });

  it('rejects an output larger than maxOutputBytes with OUTPUT_TOO_LARGE', async () => {
    const response = await run({ python: 'def main(args):\n    return {"s": "x" * 500}', node: 'export function main() { return { s: "x".repeat(500) } }' }, { limits: { maxOutputBytes: 100 } });
    expect(response).toMatchObject({ ok: false, error: { code: 'OUTPUT_TOO_LARGE', message: expect.stringMatching(/508 bytes.*100-byte limit/) } });
  });

  it('reports an exception with its type, message and only the user frames', async () => {
    const response = await run({
      python: 'def helper(x):\n    raise ValueError("boom " + x)\n\ndef main(args):\n    helper("now")\n',
      node: 'function helper(x) {\n  throw new RangeError("boom " + x)\n}\nexport function main() {\n  helper("now")\n}\n',
    });
    expect(response).toMatchObject({ ok: false, error: { code: 'CODE_EXECUTION_FAILED', type: language === 'python' ? 'ValueError' : 'RangeError', message: 'boom now' } });
    const stack = response.ok ? '' : (response.error.stack ?? '');
    expect(stack).toContain(userFile);
    expect(stack).not.toMatch(/podflow_runner|node-runner|node:internal|runpy/);
    if (language === 'python') {
      expect(stack).toContain('File "main.py", line 2, in helper');
      expect(stack).toContain('File "main.py", line 5, in main');
      expect(stack.split('\n').at(-1)).toBe('ValueError: boom now');
    } else {
      expect(stack.split('\n')[0]).toBe('RangeError: boom now');
      expect(stack).toMatch(new RegExp(`at helper \\(.*${userFile}:2:\\d+\\)`));
      expect(stack).toMatch(new RegExp(`at main \\(.*${userFile}:5:\\d+\\)`));
    }
  });

  it('fails clearly when main is missing', async () => {
    const response = await run({ python: 'x = 1', node: 'export const x = 1' });
    expect(response).toMatchObject({ ok: false, error: { code: 'CODE_EXECUTION_FAILED', message: expect.stringMatching(language === 'python' ? /def main\(args\)/ : /export function main\(args\)/) } });
  });

  it('captures files written (also in subdirectories) in the order written, with sha256', async () => {
    const response = await run({
      python: 'import os, time\ndef main(args):\n    os.makedirs("out/deep")\n    open("z-first.txt", "w").write("first")\n    time.sleep(0.05)\n    open("out/deep/a-second.bin", "wb").write(bytes(range(256)))\n    return {}',
      node: 'import fs from "node:fs";\nexport async function main() {\n  fs.mkdirSync("out/deep", { recursive: true });\n  fs.writeFileSync("z-first.txt", "first");\n  await new Promise((r) => setTimeout(r, 50));\n  fs.writeFileSync("out/deep/a-second.bin", Buffer.from(Array.from({ length: 256 }, (_, i) => i)));\n  return {};\n}',
    });
    expect(response.ok).toBe(true);
    expect(response.files).toEqual([
      { path: 'z-first.txt', size: 5, sha256: sha256(join(response.workdir, 'z-first.txt')) },
      { path: 'out/deep/a-second.bin', size: 256, sha256: sha256(join(response.workdir, 'out/deep/a-second.bin')) },
    ]);
  });

  // Issue 15, agent tools: a tool call's main may return any JSON value, reported as { value }.
  it.each([
    ['a list', { python: 'def main(args):\n    return [1, "two", None]', node: 'export function main() { return [1, "two", null] }' }, [1, 'two', null]],
    ['a string', { python: 'def main(args):\n    return "{\\"not\\": \\"parsed\\"}"', node: 'export function main() { return \'{"not": "parsed"}\' }' }, '{"not": "parsed"}'],
    ['a number', { python: 'def main(args):\n    return 2.5', node: 'export function main() { return 2.5 }' }, 2.5],
    ['nothing (null)', { python: 'def main(args):\n    return None', node: 'export function main() { }' }, null],
  ])('with returnAny, returns %s as the output { value }', async (_what, variants, value) => {
    const response = await run(variants, { returnAny: true });
    expect(response).toMatchObject({ ok: true, output: { value } });
  });

  it('with returnAny, still refuses a value that is not JSON', async () => {
    const response = await run({ python: 'def main(args):\n    return {1, 2}', node: 'export function main() { return [() => 1] }' }, { returnAny: true });
    expect(response).toMatchObject({ ok: false, error: { code: 'OUTPUT_INVALID' } });
  });

  // Issue 15: written back to back, these share one clock tick; the order must still be the
  // written one, not the alphabetical one (sub/b.txt in a directory created just before it).
  const SEQUENCE = ['z1.txt', 'm1.txt', 'a1.txt', 'sub/b.txt', '0.txt'];
  it.each([1, 2, 3])('returns files written back to back in written order, not by name (round %i)', async () => {
    const response = await run({
      python: `import os\ndef main(args):\n    for name in ${JSON.stringify(SEQUENCE)}:\n        if "/" in name:\n            os.makedirs(os.path.dirname(name), exist_ok=True)\n        with open(name, "w") as f:\n            f.write(name)\n    return {}`,
      node: `import fs from "node:fs";\nexport function main() {\n  for (const name of ${JSON.stringify(SEQUENCE)}) {\n    if (name.includes("/")) fs.mkdirSync(name.split("/")[0], { recursive: true });\n    fs.writeFileSync(name, name);\n  }\n  return {};\n}`,
    });
    expect(response.ok).toBe(true);
    expect(response.files.map((file) => file.path)).toEqual(SEQUENCE);
  });

  it('sees writes through every API: streams, promises, file handles, renames and descriptors', async () => {
    const response = await run({
      python:
        'import os, pathlib\ndef main(args):\n    with open("s.txt", "w") as f:\n        f.write("s")\n    pathlib.Path("p.txt").write_text("p")\n    fd = os.open("h.txt", os.O_WRONLY | os.O_CREAT)\n    os.write(fd, b"h")\n    os.close(fd)\n    with open("tmp", "w") as f:\n        f.write("r")\n    os.replace("tmp", "r.txt")\n    return {}',
      node:
        'import fs from "node:fs";\nexport async function main() {\n  await new Promise((done) => fs.createWriteStream("s.txt").end("s", done));\n  await fs.promises.writeFile("p.txt", "p");\n  const handle = await fs.promises.open("h.txt", "w");\n  await handle.write("h");\n  await handle.close();\n  fs.writeFileSync("tmp", "r");\n  fs.renameSync("tmp", "r.txt");\n  return {};\n}',
    });
    expect(response.ok).toBe(true);
    // Within one clock tick or not, the written order; the renamed file counts at its rename.
    expect(response.files.map((file) => file.path)).toEqual(['s.txt', 'p.txt', 'h.txt', 'r.txt']);
  });

  it('keeps the order of those writes when their mtimes tie exactly (set by a subprocess, which the runner does not see)', async () => {
    const files = ['s.txt', 'p.txt', 'h.txt', 'r.txt'];
    const touch = `["touch", "-d", "@1700000000", ${files.map((f) => `"${f}"`).join(', ')}]`;
    const response = await run({
      python:
        `import os, pathlib, subprocess\ndef main(args):\n    with open("s.txt", "w") as f:\n        f.write("s")\n    pathlib.Path("p.txt").write_text("p")\n    fd = os.open("h.txt", os.O_WRONLY | os.O_CREAT)\n    os.write(fd, b"h")\n    os.close(fd)\n    with open("tmp", "w") as f:\n        f.write("r")\n    os.replace("tmp", "r.txt")\n    subprocess.run(${touch}, check=True)\n    return {}`,
      node:
        `import fs from "node:fs";\nimport { execFileSync } from "node:child_process";\nexport async function main() {\n  await new Promise((done) => fs.createWriteStream("s.txt").end("s", done));\n  await fs.promises.writeFile("p.txt", "p");\n  const handle = await fs.promises.open("h.txt", "w");\n  await handle.write("h");\n  await handle.close();\n  fs.writeFileSync("tmp", "r");\n  fs.renameSync("tmp", "r.txt");\n  const [command, ...rest] = ${touch};\n  execFileSync(command, rest);\n  return {};\n}`,
    });
    expect(response.ok).toBe(true);
    expect(response.files.map((file) => file.path)).toEqual(files);
  });

  it('breaks an exact mtime tie by the order of the writes (all five set to one mtime afterwards, in that order)', async () => {
    // A change of attributes (utime, chmod) counts as a write, in both runners.
    const workdir = createWorkdir();
    mkdirSync(join(workdir, 'sub'));
    const response = await run({
      python: `import os\ndef main(args):\n    for name in ${JSON.stringify(SEQUENCE)}:\n        with open(name, "w") as f:\n            f.write(name)\n    for name in ${JSON.stringify(SEQUENCE)}:\n        os.utime(name, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))\n    return {}`,
      node: `import fs from "node:fs";\nexport function main() {\n  for (const name of ${JSON.stringify(SEQUENCE)}) fs.writeFileSync(name, name);\n  for (const name of ${JSON.stringify(SEQUENCE)}) fs.utimesSync(name, 1_700_000_000, 1_700_000_000);\n  return {};\n}`,
    }, { workdir });
    expect(response.ok).toBe(true);
    expect(response.files.map((file) => file.path)).toEqual(SEQUENCE);
  });

  // A warm sandbox's Node runner wraps node:fs while it waits (`--prewarm`): the wrappers exist
  // before the request, and must record for it all the same.
  if (language !== 'python') {
    it('orders tied writes through every API the same when started warm (--prewarm: node:fs wrapped before the request)', async () => {
      const files = ['s.txt', 'p.txt', 'h.txt', 'r.txt'];
      const response = await run(
        {
          python: '',
          node: `import fs from "node:fs";\nexport async function main() {\n  await new Promise((done) => fs.createWriteStream("s.txt").end("s", done));\n  await fs.promises.writeFile("p.txt", "p");\n  const handle = await fs.promises.open("h.txt", "w");\n  await handle.write("h");\n  await handle.close();\n  fs.writeFileSync("tmp", "r");\n  fs.renameSync("tmp", "r.txt");\n  for (const name of ${JSON.stringify(['s.txt', 'p.txt', 'h.txt', 'r.txt'])}) fs.utimesSync(name, 1_700_000_000, 1_700_000_000);\n  return {};\n}`,
        },
        { prewarm: true },
      );
      expect(response.ok).toBe(true);
      expect(response.files.map((file) => file.path)).toEqual(files);
    });
  }

  it('does not count a write to a reused descriptor number for the file it stood for before', async () => {
    const response = await run({
      python: 'import os, subprocess\ndef main(args):\n    fd = os.open("a.txt", os.O_WRONLY | os.O_CREAT)\n    os.close(fd)\n    with open("b.txt", "w") as f:\n        f.write("b")\n    with open("/tmp/podflow-outside-" + str(os.getpid()), "w") as f:\n        f.write("x")\n    subprocess.run(["touch", "-d", "@1700000000", "a.txt", "b.txt"], check=True)\n    return {}',
      node: 'import fs from "node:fs";\nimport { execFileSync } from "node:child_process";\nexport async function main() {\n  const handle = await fs.promises.open("a.txt", "w");\n  await handle.close();\n  fs.writeFileSync("b.txt", "b");\n  fs.writeFileSync(`/tmp/podflow-outside-${process.pid}`, "x");\n  const reader = await fs.promises.open("b.txt", "r");\n  await reader.close();\n  execFileSync("touch", ["-d", "@1700000000", "a.txt", "b.txt"]);\n  return {};\n}',
    });
    expect(response.files.map((file) => file.path)).toEqual(['a.txt', 'b.txt']);
  });

  it('orders files whose names start with two dots like any other (they are inside the workdir)', async () => {
    const response = await run({
      python: 'import subprocess\ndef main(args):\n    for name in ["..z", "..a"]:\n        with open(name, "w") as f:\n            f.write(name)\n    subprocess.run(["touch", "-d", "@1700000000", "..z", "..a"], check=True)\n    return {}',
      node: 'import fs from "node:fs";\nimport { execFileSync } from "node:child_process";\nexport function main() {\n  for (const name of ["..z", "..a"]) fs.writeFileSync(name, name);\n  execFileSync("touch", ["-d", "@1700000000", "..z", "..a"]);\n  return {};\n}',
    });
    expect(response.files.map((file) => file.path)).toEqual(['..z', '..a']);
  });

  it('orders a file by its last write: one rewritten at the end comes last', async () => {
    const response = await run({
      python: 'def main(args):\n    for name in ["a.txt", "b.txt", "c.txt", "a.txt"]:\n        with open(name, "a") as f:\n            f.write("x")\n    return {}',
      node: 'import fs from "node:fs";\nexport function main() {\n  for (const name of ["a.txt", "b.txt", "c.txt", "a.txt"]) fs.appendFileSync(name, "x");\n  return {};\n}',
    });
    expect(response.files.map((file) => file.path)).toEqual(['b.txt', 'c.txt', 'a.txt']);
  });

  it('ignores unchanged pre-existing files but captures modified ones, even when main fails', async () => {
    const workdir = createWorkdir();
    writeFileSync(join(workdir, 'untouched.txt'), 'same');
    mkdirSync(join(workdir, 'data'));
    writeFileSync(join(workdir, 'data', 'edited.txt'), 'before');
    const response = await run(
      { python: 'def main(args):\n    open("data/edited.txt", "a").write(" after")\n    raise RuntimeError("late")', node: 'import fs from "node:fs";\nexport function main() { fs.appendFileSync("data/edited.txt", " after"); throw new Error("late") }' },
      { workdir },
    );
    expect(response.ok).toBe(false);
    expect(response.files).toEqual([{ path: 'data/edited.txt', size: 12, sha256: sha256(join(workdir, 'data', 'edited.txt')) }]);
  });

  it('never captures symlinks or follows them out of the workdir', async () => {
    const response = await run({
      python: 'import os\ndef main(args):\n    os.symlink("/etc/passwd", "passwd")\n    os.symlink("/etc", "etc")\n    open("real.txt", "w").write("ok")\n    return {}',
      node: 'import fs from "node:fs";\nexport function main() { fs.symlinkSync("/etc/passwd", "passwd"); fs.symlinkSync("/etc", "etc"); fs.writeFileSync("real.txt", "ok"); return {} }',
    });
    expect(response.files.map((file) => file.path)).toEqual(['real.txt']);
  });

  it.each([
    ['too many files', { maxFiles: 2 }, /3 file\(s\) totalling 3 bytes.*2 files/],
    ['too many bytes', { maxFilesBytes: 2 }, /3 file\(s\) totalling 3 bytes.*2 bytes/],
  ])('fails with FILES_TOO_LARGE for %s', async (_name, limits, message) => {
    const response = await run(
      { python: 'def main(args):\n    for n in "abc":\n        open(n, "w").write(n)\n    return {"fine": True}', node: 'import fs from "node:fs";\nexport function main() { for (const n of "abc") fs.writeFileSync(n, n); return { fine: true } }' },
      { limits },
    );
    expect(response).toMatchObject({ ok: false, error: { code: 'FILES_TOO_LARGE', message: expect.stringMatching(message) }, files: [] });
  });

  it('fails with OUTPUT_INVALID naming every file whose name cannot be stored, and lists no files', async () => {
    const response = await run({
      python:
        'def main(args):\n    for name in ("..\\\\evil.txt", "line\\nbreak.txt", b"bad\\xff.txt", "valid.txt"):\n        open(name, "w").write("x")\n    return {"fine": True}',
      node:
        'import fs from "node:fs";\nexport function main() {\n  for (const name of ["..\\\\evil.txt", "line\\nbreak.txt", Buffer.from([0x62, 0x61, 0x64, 0xff]), "valid.txt"]) fs.writeFileSync(name, "x");\n  return { fine: true };\n}',
    });
    if (response.ok) throw new Error('expected OUTPUT_INVALID');
    expect(response.files).toEqual([]);
    expect(response.error).toMatchObject({ code: 'OUTPUT_INVALID', details: { count: 3 } });
    const named = (response.error.details?.files as Array<{ path: string; reason: string }>).map((file) => [file.path, file.reason]);
    expect(named.sort()).toEqual([
      ['..\\evil.txt', 'the name contains a backslash (\\), a path separator on Windows'],
      [language === 'python' ? 'bad\uFFFD.txt' : 'bad\uFFFD', 'the name is not valid UTF-8'],
      ['line\nbreak.txt', 'the name contains the control character U+000A'],
    ]);
    expect(response.error.message).toMatch(/^3 file\(s\) written under \/home\/user cannot be stored: .*"\.\.\\\\evil\.txt" \(the name contains a backslash.*Rename them or delete them before main returns/);
  });

  it('refuses a file inside a directory whose name is not UTF-8', async () => {
    const response = await run({
      python: 'import os\ndef main(args):\n    os.mkdir(b"d\\xff")\n    open(b"d\\xff/in.txt", "w").write("x")\n    return {}',
      node: 'import fs from "node:fs";\nexport function main() {\n  const dir = Buffer.from([0x64, 0xff]);\n  fs.mkdirSync(dir);\n  fs.writeFileSync(Buffer.concat([dir, Buffer.from("/in.txt")]), "x");\n  return {};\n}',
    });
    expect(response).toMatchObject({ ok: false, error: { code: 'OUTPUT_INVALID', details: { files: [{ path: 'd\uFFFD/in.txt', reason: 'the name is not valid UTF-8' }] } } });
  });

  it('captures long names the store can hold: 250 characters, and 255 bytes', async () => {
    const long = 'n'.repeat(250);
    const longest = 'é'.repeat(127) + 'x';
    const response = await run({
      python: `def main(args):\n    open("${long}", "w").write("a")\n    open("${longest}", "w").write("b")\n    return {}`,
      node: `import fs from "node:fs";\nexport function main() { fs.writeFileSync("${long}", "a"); fs.writeFileSync("${longest}", "b"); return {} }`,
    });
    expect(response.ok).toBe(true);
    expect(response.files.map((file) => file.path).sort()).toEqual([long, longest].sort());
  });

  it('leaves unstorable files out when main failed, keeping the code\'s own error', async () => {
    const response = await run({
      python: 'def main(args):\n    open("a\\\\b", "w").write("x")\n    open("ok.txt", "w").write("x")\n    raise ValueError("own")',
      node: 'import fs from "node:fs";\nexport function main() { fs.writeFileSync("a\\\\b", "x"); fs.writeFileSync("ok.txt", "x"); throw new Error("own") }',
    });
    expect(response).toMatchObject({ ok: false, error: { code: 'CODE_EXECUTION_FAILED', message: expect.stringContaining('own') } });
    expect(response.files.map((file) => file.path)).toEqual(['ok.txt']);
  });

  it('keeps the response intact when the code writes straight to fd 1', async () => {
    const result = await runRunner(
      language,
      pick(language, {
        python: 'import os\ndef main(args):\n    os.write(1, b"<<<PODFLOW-END garbage>>>\\n{\\"ok\\": true")\n    return {"still": "fine"}',
        node: 'import fs from "node:fs";\nexport function main() { fs.writeSync(1, "<<<PODFLOW-END garbage>>>\\n{\\"ok\\": true"); return { still: "fine" } }',
      }),
    );
    expect(result.exitCode).toBe(0);
    expect(result.response).toMatchObject({ ok: true, output: { still: 'fine' } });
  });

  it('exits 2 without a response when the request has no readable nonce', async () => {
    const result = await runRunner(language, '', { rawRequest: 'not json at all' });
    expect(result.exitCode).toBe(2);
    expect(result.response).toBeUndefined();
    expect(result.stderr).toMatch(/request is not valid JSON/);
  });

  it('answers INTERNAL to a malformed request whose nonce is readable', async () => {
    const result = await runRunner(language, '', { rawRequest: '{"nonce": "n-123", "code": ' });
    expect(result.exitCode).toBe(0);
    expect(parseRunnerOutput(result.stdout, 'n-123')).toMatchObject({ ok: false, error: { code: 'INTERNAL', message: expect.stringMatching(/not valid JSON/) } });
  });
});
