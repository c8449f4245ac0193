import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Language, RunnerResponse } from '@podflow/protocol';
import { createWorkdir, removeWorkdirs, respond } from './testing/run-runner';

// TypeScript/JavaScript-only parts of the contract: module shapes, type stripping, JS value
// kinds in outputs, and the asynchronous ways a Node program can fail.
const errorOf = (response: RunnerResponse) => (response.ok ? undefined : response.error);

afterEach(removeWorkdirs);

describe('node runner: finding and calling main', () => {
  it.each<[string, Language, string]>([
    ['export function', 'javascript', 'export function main(args) { return { got: args.x } }'],
    ['a plain, unexported function', 'javascript', 'function main(args) {\n  return { got: args.x }\n}'],
    ['a default export', 'javascript', 'export default function (args) { return { got: args.x } }'],
    ['a named default export', 'typescript', 'export default function main(args: { x: number }) { return { got: args.x } }'],
    ['an exported arrow function', 'typescript', 'export const main = async ({ x }: { x: number }) => ({ got: x })'],
    ['an unexported const arrow', 'javascript', 'const main = (args) => ({ got: args.x })'],
    ['module.exports', 'javascript', 'module.exports = function (args) { return { got: args.x } }'],
    ['async destructuring', 'typescript', 'export async function main({ x }: { x: number }): Promise<{ got: number }> { return { got: x } }'],
  ])('accepts %s', async (_name, language, code) => {
    expect(await respond(language, code, { args: { x: 7 } })).toMatchObject({ ok: true, output: { got: 7 } });
  });

  it('runs TypeScript with interfaces, generics, enums and type-only imports', async () => {
    const code = [
      "import type { Stats } from 'node:fs';",
      'interface Row { id: number; tags?: string[] }',
      'type Id<T> = T;',
      'enum Color { Red = "red", Blue = "blue" }',
      'function first<T extends Row>(rows: readonly T[]): T | undefined { return rows[0]; }',
      'class Box<T> { constructor(private readonly value: T) {} get(): T { return this.value as T; } }',
      'export function main({ rows }: { rows: Row[] }): { first: Id<number>; color: Color; boxed: string } {',
      '  const unused: Stats | null = null;',
      '  void unused;',
      '  return { first: first(rows)!.id, color: Color.Blue, boxed: new Box<string>("ok").get() };',
      '}',
    ].join('\n');
    expect(await respond('typescript', code, { args: { rows: [{ id: 4 }] } })).toMatchObject({ ok: true, output: { first: 4, color: 'blue', boxed: 'ok' } });
  });

  it('resolves require() from node_modules in the workdir and from NODE_PATH', async () => {
    const workdir = createWorkdir();
    mkdirSync(join(workdir, 'node_modules', 'local-dep'), { recursive: true });
    writeFileSync(join(workdir, 'node_modules', 'local-dep', 'index.js'), 'module.exports = { n: 1 };');
    const layer = createWorkdir();
    mkdirSync(join(layer, 'layer-dep'));
    writeFileSync(join(layer, 'layer-dep', 'index.js'), 'module.exports.n = 2;');
    const code = "import local from 'local-dep';\nimport { n } from 'layer-dep';\nexport function main() { return { sum: local.n + n } }";
    const response = await respond('typescript', code, { workdir, env: { PATH: process.env.PATH, NODE_PATH: layer } });
    expect(response).toMatchObject({ ok: true, output: { sum: 3 } });
  });
});

describe('node runner: output validation', () => {
  it.each([
    ['undefined', '{ value: undefined }', /output\.value is undefined.*omit the key or use null/],
    ['a Date', '{ at: new Date(0) }', /output\.at is a Date.*toISOString\(\)/],
    ['a Map', '{ m: new Map() }', /output\.m is a Map.*Object\.fromEntries/],
    ['a Set', '{ s: new Set([1]) }', /output\.s is a Set/],
    ['a bigint', '{ n: 10n }', /output\.n is a bigint/],
    ['a symbol', '{ s: Symbol("x") }', /output\.s is a symbol/],
    ['a Promise', '{ p: Promise.resolve(1) }', /output\.p is a Promise.*await/],
    ['a class instance at the top', 'new (class Report { x = 1 })()', /output is an instance of class Report/],
    ['a string', '"{}"', /got a string.*JSON\.parse/],
    ['a circular reference', '(() => { const o: any = {}; o.self = o; return o })()', /output\.self is a circular reference/],
  ])('rejects %s naming the path', async (_name, expression, message) => {
    const error = errorOf(await respond('typescript', `export function main() { return ${expression} }`));
    expect(error).toMatchObject({ code: 'OUTPUT_INVALID', message: expect.stringMatching(message) });
  });

  it('accepts objects with a null prototype', async () => {
    expect(await respond('javascript', 'export function main() { return Object.assign(Object.create(null), { a: 1 }) }')).toMatchObject({ ok: true, output: { a: 1 } });
  });
});

describe('node runner: failures', () => {
  it('reports a syntax error with its location', async () => {
    const error = errorOf(await respond('typescript', 'export function main() {\n  return { a: };\n}'));
    expect(error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', type: 'SyntaxError', message: expect.stringMatching(/\(main\.ts:2:\d+\)$/) });
    expect(error?.stack).toContain('return { a: };');
  });

  it('reports a syntax error only V8 detects with its location', async () => {
    const error = errorOf(await respond('javascript', 'let a = 1;\nlet a = 2;\nexport function main() { return {} }'));
    expect(error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', type: 'SyntaxError', message: expect.stringMatching(/\(main\.js:2(:\d+)?\)$/) });
  });

  it.each([
    ['a string', 'throw "plain text"', 'plain text'],
    ['an object', 'throw { code: 42 }', '{"code":42}'],
  ])('reports a thrown non-Error (%s) as NonError', async (_name, statement, message) => {
    const error = errorOf(await respond('javascript', `export function main() { ${statement} }`));
    expect(error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', type: 'NonError', message });
  });

  it('names a custom error class', async () => {
    const error = errorOf(await respond('typescript', 'class QuotaError extends Error {}\nexport function main() { throw new QuotaError("over") }'));
    expect(error).toMatchObject({ type: 'QuotaError', message: 'over' });
    expect(error?.stack?.split('\n')[0]).toBe('Error: over');
  });

  it('reports an exception thrown asynchronously while main is pending', async () => {
    const code = 'export function main() {\n  setTimeout(() => { throw new TypeError("from a timer") }, 5);\n  return new Promise(() => {});\n}';
    const error = errorOf(await respond('javascript', code));
    expect(error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', type: 'TypeError', message: 'from a timer' });
    expect(error?.stack).toMatch(/main\.js:2:\d+/);
  });

  it('reports an unhandled rejection', async () => {
    const code = 'export async function main() {\n  Promise.reject(new Error("nobody caught me"));\n  await new Promise((r) => setTimeout(r, 50));\n  return {};\n}';
    expect(errorOf(await respond('javascript', code))).toMatchObject({ code: 'CODE_EXECUTION_FAILED', message: 'nobody caught me' });
  });

  it('gives exactly one response when a timer throws after main returned', async () => {
    const code = 'export function main() { setTimeout(() => { throw new Error("too late") }, 0); return { first: true } }';
    expect(await respond('javascript', code)).toMatchObject({ ok: true, output: { first: true } });
  });

  it('reports process.exit() from user code', async () => {
    const error = errorOf(await respond('javascript', 'export function main() { process.exit(3) }'));
    expect(error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', type: 'ProcessExit', message: expect.stringMatching(/process\.exit\(3\)/) });
  });

  it('reports a main whose promise can never settle', async () => {
    const error = errorOf(await respond('javascript', 'export function main() { return new Promise(() => {}) }'));
    expect(error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', message: expect.stringMatching(/never settled/) });
  });
});
