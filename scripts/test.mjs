#!/usr/bin/env node
// `npm test`: installs and builds what is missing, starts a private redis-server on a free port,
// runs every Jest suite (unit, integration, end-to-end) against it, and stops it afterwards.
// Extra arguments go to Jest, e.g. `npm test -- test/e2e/examples`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, ensureBubblewrap, ensureInstalledAndBuilt, say, startRedis } from './lib/services.mjs';

async function main() {
  ensureInstalledAndBuilt();
  ensureBubblewrap();
  const dataDir = mkdtempSync(join(tmpdir(), 'podflow-test-redis-'));
  const redis = await startRedis(dataDir);
  say(`test redis at ${redis.url}`);
  let status = 1;
  try {
    const jest = spawnSync(process.execPath, [join(ROOT, 'node_modules/jest/bin/jest.js'), '--config', join(ROOT, 'jest.config.js'), ...process.argv.slice(2)], {
      stdio: 'inherit',
      cwd: ROOT,
      env: { ...process.env, REDIS_URL: redis.url },
    });
    status = jest.status ?? 1;
  } finally {
    await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  process.exit(status);
}

main().catch((error) => {
  say(`tests could not start: ${error.message}`);
  process.exit(1);
});
