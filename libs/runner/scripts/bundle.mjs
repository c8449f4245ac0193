// Bundles src/node-runner.ts (with Sucrase and the protocol helpers it uses) into one
// dependency-free file, dist/node-runner.js, that can be copied into any sandbox image.
import { build } from 'esbuild';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist', 'node-runner.js');

// Bundle the protocol from its sources: the runner must not depend on libs/protocol being built.
const protocolFromSource = {
  name: 'podflow-protocol-source',
  setup(b) {
    b.onResolve({ filter: /^@podflow\/protocol$/ }, () => ({ path: resolve(root, '..', 'protocol', 'src', 'index.ts') }));
  },
};

const result = await build({
  entryPoints: [join(root, 'src', 'node-runner.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  write: false,
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [protocolFromSource],
});

// Write then rename, so a test or driver starting the runner never sees half a file.
mkdirSync(dirname(outfile), { recursive: true });
const temporary = `${outfile}.${process.pid}.tmp`;
writeFileSync(temporary, result.outputFiles[0].contents);
renameSync(temporary, outfile);
