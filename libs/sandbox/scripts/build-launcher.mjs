#!/usr/bin/env node
// Builds native/podflow-launch.c into dist/podflow-launch (static when libc.a is there). Without a
// C compiler, or when it fails, the build goes on with a warning: the process driver then starts
// sandboxes through the sh chain (launch.ts), which does the same in five execs (~3 ms more CPU
// per sandbox), and says so at start-up (its isolation report's `launcher: false`).
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'native', 'podflow-launch.c');
const target = join(root, 'dist', 'podflow-launch');
const partial = `${target}.${process.pid}.partial`;
const cc = process.env.CC || 'cc';
const flags = ['-O2', '-Wall', '-Wextra', '-Werror', '-D_FORTIFY_SOURCE=2', '-o', partial, source];

mkdirSync(dirname(target), { recursive: true });
let failure = `no C compiler (${cc}; apt-get install gcc libc6-dev)`;
for (const extra of [['-static'], []]) {
  try {
    execFileSync(cc, [...extra, ...flags], { stdio: ['ignore', 'ignore', 'pipe'] });
    failure = undefined;
    break;
  } catch (error) {
    if (error.code === 'ENOENT') break;
    failure = `${cc} could not build ${source}: ${error.stderr?.toString().trim() || error.message}`;
  }
}
if (failure === undefined) {
  chmodSync(partial, 0o755);
  renameSync(partial, target);
} else {
  rmSync(partial, { force: true });
  rmSync(target, { force: true });
  console.warn(`[podflow] WARNING: ${failure}; ${target} is not built and process sandboxes start through the slower sh chain`);
}
