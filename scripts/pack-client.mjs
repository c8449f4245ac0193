#!/usr/bin/env node
// `npm run pack:client`: the client SDK as tarballs another Node service installs with npm:
// @podflow/client and the two workspace packages it builds on (@podflow/protocol, @podflow/redis),
// into build/ (or the directory given). `bullmq`, `ioredis` and the rest come from the registry.
// Install all three at once, so npm takes the workspace dependencies from the tarballs:
//   npm install ./build/podflow-protocol-0.1.0.tgz ./build/podflow-redis-0.1.0.tgz ./build/podflow-client-0.1.0.tgz
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT, ensureInstalledAndBuilt, say } from './lib/services.mjs';

const PACKAGES = ['libs/protocol', 'libs/redis', 'libs/client'];

function main() {
  const out = resolve(process.argv[2] ?? join(ROOT, 'build'));
  mkdirSync(out, { recursive: true });
  ensureInstalledAndBuilt();
  const tarballs = PACKAGES.map((dir) => {
    const [packed] = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: join(ROOT, dir), encoding: 'utf8' }));
    return join(out, packed.filename);
  });
  say(`packed the client SDK; in your service run:\n  npm install ${tarballs.join(' ')}`);
  process.stdout.write(`${JSON.stringify(tarballs)}\n`);
}

main();
