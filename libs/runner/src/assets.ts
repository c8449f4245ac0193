import * as path from 'node:path';
import type { Language } from '@podflow/protocol';

/** Absolute host paths of the runner programs. */
export interface RunnerAssets {
  /** `python/podflow_runner.py` (stdlib only). */
  python: string;
  /** `dist/node-runner.js` (one bundled file, built by `npm run build`). */
  node: string;
}

/** The interpreters a driver runs the runners with, e.g. `/usr/bin/python3` and `process.execPath`. */
export interface RunnerInterpreters {
  python: string;
  node: string;
}

/**
 * Where this package's runner programs are. Resolved from the package root, which is the parent
 * of both `src/` (Jest, ts-node) and `dist/` (built), so it works from either.
 */
export function runnerAssets(): RunnerAssets {
  const root = path.resolve(__dirname, '..');
  return {
    python: path.join(root, 'python', 'podflow_runner.py'),
    node: path.join(root, 'dist', 'node-runner.js'),
  };
}

/**
 * The command line that starts the runner for `language`. Python runs isolated (`-I`: no user
 * site, no PYTHON* variables, no script dir on sys.path) and unbuffered (`-u`).
 */
export function runnerArgv(language: Language, assets: RunnerAssets, interpreters: RunnerInterpreters): string[] {
  switch (language) {
    case 'python':
      return [interpreters.python, '-I', '-u', assets.python];
    case 'typescript':
    case 'javascript':
      return [interpreters.node, assets.node];
  }
}
