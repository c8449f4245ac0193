import Module from 'node:module';
import * as path from 'node:path';
import { transform, type Transform } from 'sucrase';
import { UserFailure } from './user-failure';

export type UserMain = (args: unknown) => unknown;

/** The parts of Node's CommonJS loader we rely on that @types/node does not declare. */
interface LoadableModule {
  filename: string;
  paths: string[];
  exports: unknown;
  _compile(content: string, filename: string): unknown;
}
interface ModuleInternals {
  new (id: string, parent?: unknown): LoadableModule;
  _nodeModulePaths(from: string): string[];
}

/**
 * Exports a top-level `function main` (or `const main`) the user did not export. Appended after
 * the code so that no user line moves; `typeof` is safe even when `main` was never declared.
 */
const EXPORT_PLAIN_MAIN =
  "\n;if(typeof main==='function'&&!(module.exports&&typeof module.exports.main==='function'))module.exports.main=main;\n";

const DEFINE_MAIN_HINT = 'define `export function main(args) { ... }` returning an object';

/** `main.ts` / `main.js` inside the workdir: the name stack traces and syntax errors show. */
export function userFilename(language: 'typescript' | 'javascript', workdir: string): string {
  return path.join(workdir, language === 'typescript' ? 'main.ts' : 'main.js');
}

/**
 * Turns anything thrown by user code into CODE_EXECUTION_FAILED: type from the error's name (or
 * class), the message, and a stack reduced to the user's own frames.
 */
export function codeFailure(thrown: unknown, filename: string): UserFailure {
  if (typeof thrown !== 'object' || thrown === null || typeof (thrown as Error).message !== 'string') {
    return new UserFailure('CODE_EXECUTION_FAILED', describeNonError(thrown), 'NonError');
  }
  const error = thrown as Error;
  let type = 'Error';
  let stack: string | undefined;
  try {
    const ctor = (error.constructor as { name?: unknown } | undefined)?.name;
    const name = typeof error.name === 'string' && error.name ? error.name : undefined;
    // `class MyError extends Error {}` keeps name "Error"; the class name says more.
    type = name === 'Error' && typeof ctor === 'string' && ctor && ctor !== 'Error' ? ctor : (name ?? (typeof ctor === 'string' && ctor ? ctor : 'Error'));
    stack = typeof error.stack === 'string' ? userStack(error.stack, filename) : undefined;
  } catch {
    // A hostile getter: type and message are enough.
  }
  return new UserFailure('CODE_EXECUTION_FAILED', error.message, type, stack);
}

function describeNonError(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
  } catch {
    // a cycle or a bigint: fall back to String
  }
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** The header (`Name: message`, plus V8's location block for syntax errors) and the user's frames. */
export function userStack(stack: string, filename: string): string {
  const lines = stack.split('\n');
  const firstFrame = lines.findIndex((line) => /^\s+at /.test(line));
  if (firstFrame < 0) return stack;
  const frames = lines.slice(firstFrame).filter((line) => line.includes(`${filename}:`));
  return [...lines.slice(0, firstFrame), ...frames].join('\n');
}

/** Sucrase reports `Unexpected token (2:10)`; show it the way V8 would, with the user's line. */
function transformFailure(error: unknown, code: string, filename: string): UserFailure {
  const raw = error instanceof Error ? error.message : String(error);
  const message = raw.replace(/^Error transforming [^:]*: /, '').replace(/\s*\(\d+:\d+\)$/, '');
  const loc = (error as { loc?: { line?: number; column?: number } }).loc;
  if (!loc?.line) return new UserFailure('CODE_EXECUTION_FAILED', `${message} (${path.basename(filename)})`, 'SyntaxError');
  const column = loc.column ?? 1;
  const sourceLine = code.split(/\r?\n/)[loc.line - 1] ?? '';
  const where = `${path.basename(filename)}:${loc.line}:${column}`;
  const stack = `${filename}:${loc.line}:${column}\n${sourceLine}\n${' '.repeat(Math.max(0, column - 1))}^\n\nSyntaxError: ${message}`;
  return new UserFailure('CODE_EXECUTION_FAILED', `${message} (${where})`, 'SyntaxError', stack);
}

/** V8 rejected code Sucrase accepted: its stack starts with `<file>:<line>`, then the line and a caret. */
function compileFailure(error: SyntaxError, filename: string): UserFailure {
  const failure = codeFailure(error, filename);
  const lines = (error.stack ?? '').split('\n');
  const header = new RegExp(`^${filename.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+)$`).exec(lines[0] ?? '');
  if (!header) return failure;
  const caret = (lines[2] ?? '').indexOf('^');
  const where = `${path.basename(filename)}:${header[1]}${caret >= 0 ? `:${caret + 1}` : ''}`;
  return new UserFailure('CODE_EXECUTION_FAILED', `${error.message} (${where})`, 'SyntaxError', failure.userStack);
}

/** Both transforms once on sample code: V8 compiles Sucrase's hot paths before a request arrives. */
export function prewarmTransforms(): void {
  const sample = 'import { a } from "b";\nexport function main(args: { n: number }): { n: number } { const x: number = args.n; return { n: x + a }; }\n';
  transform(sample, { transforms: ['typescript', 'imports'], filePath: 'prewarm.ts', disableESTransforms: true });
  transform(sample.replace(/: \{ n: number \}|: number/g, ''), { transforms: ['imports'], filePath: 'prewarm.js', disableESTransforms: true });
}

/**
 * Type-strips (TypeScript) and converts ES module syntax to CommonJS, compiles the result as a
 * module living at `filename` (so `require` resolves from the workdir and NODE_PATH) and returns
 * its main function. Runs the module's top-level code.
 */
export function loadUserMain(language: 'typescript' | 'javascript', code: string, workdir: string): UserMain {
  const filename = userFilename(language, workdir);
  const transforms: Transform[] = language === 'typescript' ? ['typescript', 'imports'] : ['imports'];
  let compiled: string;
  try {
    // disableESTransforms: Node 20 runs modern syntax as is; fewer rewrites, closer columns.
    compiled = transform(code, { transforms, filePath: filename, disableESTransforms: true }).code;
  } catch (error) {
    throw transformFailure(error, code, filename);
  }
  const ModuleCtor = Module as unknown as ModuleInternals;
  const mod = new ModuleCtor(filename);
  mod.filename = filename;
  const nodePath = (process.env.NODE_PATH ?? '').split(path.delimiter).filter(Boolean);
  mod.paths = [...ModuleCtor._nodeModulePaths(workdir), ...nodePath];
  try {
    mod._compile(compiled + EXPORT_PLAIN_MAIN, filename);
  } catch (error) {
    // A SyntaxError thrown while the module body runs (JSON.parse...) has no location header.
    if (error instanceof SyntaxError && (error.stack ?? '').startsWith(`${filename}:`)) {
      throw compileFailure(error, filename);
    }
    throw codeFailure(error, filename);
  }
  const main = findMain(mod.exports);
  if (!main) throw new UserFailure('CODE_EXECUTION_FAILED', `the code does not define a main function; ${DEFINE_MAIN_HINT}`);
  return main;
}

function findMain(exports: unknown): UserMain | undefined {
  if (typeof exports === 'function') return exports as UserMain;
  if (typeof exports !== 'object' || exports === null) return undefined;
  const record = exports as { main?: unknown; default?: unknown };
  if (typeof record.main === 'function') return record.main as UserMain;
  if (typeof record.default === 'function') return record.default as UserMain;
  const nested = (record.default as { main?: unknown } | undefined)?.main;
  return typeof nested === 'function' ? (nested as UserMain) : undefined;
}
