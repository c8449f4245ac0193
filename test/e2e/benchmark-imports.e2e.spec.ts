import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

// No suite runs the benchmarks, and most of their imports are dynamic, inside the function that
// needs them: a module that moved (bench:k8s imported an extensionless subpath for two sessions)
// went unnoticed until someone benchmarked. Each import is resolved here as Node's ESM loader
// would from the file's own directory, and what it resolves to must exist.
const ROOT = join(__dirname, '..', '..');
const FILES = [
  ...readdirSync(join(ROOT, 'bench')).filter((name) => name.endsWith('.mjs')).map((name) => `bench/${name}`),
  ...readdirSync(join(ROOT, 'scripts')).filter((name) => name.startsWith('bench') && name.endsWith('.mjs')).map((name) => `scripts/${name}`),
];

/**
 * Specifiers of static (`from '…'`) and dynamic (`import('…')`) imports of the repository's own
 * modules: relative paths and @podflow packages, what a refactor moves. (Third-party packages are
 * left to npm; the scan would also find imports inside the benchmarks' sample user code.)
 */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const all = [...text.matchAll(/(?:\bimport\(\s*|\bfrom\s+)(['"])([^'"]+)\1/g)].map((match) => match[2]!);
  return [...new Set(all.filter((specifier) => specifier.startsWith('.') || specifier.startsWith('@podflow/')))];
}

/** The specifiers that do not resolve to an existing file from `file`'s directory, with why. */
function unresolved(file: string, specifiers: string[]): string[] {
  const script = `
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const failed = [];
for (const specifier of ${JSON.stringify(specifiers)}) {
  try {
    const url = import.meta.resolve(specifier);
    if (url.startsWith('file:') && !statSync(fileURLToPath(url), { throwIfNoEntry: false })?.isFile()) failed.push(specifier + ' -> ' + url + ' (no such file)');
  } catch (error) {
    failed.push(specifier + ' (' + (error.code ?? error.message) + ')');
  }
}
process.stdout.write(JSON.stringify(failed));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dirname(join(ROOT, file)), encoding: 'utf8' })) as string[];
}

describe('benchmark scripts', () => {
  it('are found (the list below is not empty by accident)', () => {
    expect(FILES).toEqual(expect.arrayContaining(['bench/k8s-pods.mjs', 'bench/orchestration.mjs', 'scripts/bench.mjs', 'scripts/bench-k8s.mjs']));
  });

  it.each(FILES)('%s: every module it imports resolves to a file', (file) => {
    const specifiers = importsOf(file);
    expect(unresolved(file, specifiers)).toEqual([]);
  });

  it('would catch the extensionless subpath bench:k8s used to import', () => {
    expect(unresolved('bench/k8s-pods.mjs', ['@podflow/sandbox/kubernetes', '@podflow/sandbox/kubernetes.js'])).toEqual([expect.stringContaining('@podflow/sandbox/kubernetes -> ')]);
  });
});
