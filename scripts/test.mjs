#!/usr/bin/env node
// `npm test`: installs and builds what is missing, starts a private redis-server on a free port,
// runs every Jest suite (unit, integration, end-to-end) against it, and stops it afterwards.
// Extra arguments go to Jest, e.g. `npm test -- test/e2e/examples`.
import { join } from 'node:path';
import { ROOT, ensureBubblewrap, ensureInstalledAndBuilt, runJestWithRedis, say } from './lib/services.mjs';

async function main() {
  ensureInstalledAndBuilt();
  ensureBubblewrap();
  process.exit(await runJestWithRedis(join(ROOT, 'jest.config.js'), process.argv.slice(2)));
}

main().catch((error) => {
  say(`tests could not start: ${error.message}`);
  process.exit(1);
});
