#!/usr/bin/env node
// `npm test`: installs and builds what is missing, starts a private redis-server and a private
// MinIO (S3) on free ports, runs every Jest suite (unit, integration, end-to-end) against them,
// and stops them afterwards.
// Extra arguments go to Jest, e.g. `npm test -- test/e2e/examples`.
import { join } from 'node:path';
import { ROOT, ensureBubblewrap, ensureSandboxNetworking, ensurePip, ensureInstalledAndBuilt, runJestWithServices, say } from './lib/services.mjs';

async function main() {
  ensureInstalledAndBuilt();
  ensureBubblewrap();
  ensureSandboxNetworking();
  ensurePip();
  process.exit(await runJestWithServices(join(ROOT, 'jest.config.js'), process.argv.slice(2)));
}

main().catch((error) => {
  say(`tests could not start: ${error.message}`);
  process.exit(1);
});
