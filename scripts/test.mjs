#!/usr/bin/env node
// `npm test`: installs and builds what is missing, starts a private redis-server and a private
// MinIO (S3) on free ports, runs every Jest suite (unit, integration, end-to-end) against them,
// then runs the end-to-end suites (test/e2e) once more against a private 3-master Redis Cluster,
// and stops everything afterwards.
// Extra arguments go to Jest, e.g. `npm test -- test/e2e/examples`. A run narrowed to some tests
// (any argument that is not a `--flag`) uses the redis-server only; PODFLOW_TEST_REDIS=cluster
// runs the given tests against the Redis Cluster only, e.g.
// `PODFLOW_TEST_REDIS=cluster npm test -- test/e2e/examples`.
import { join } from 'node:path';
import { ROOT, ensureBubblewrap, ensureCCompiler, ensureSandboxNetworking, ensurePip, ensureInstalledAndBuilt, runJestWithServices, say } from './lib/services.mjs';

/** The end-to-end suites, run against the Redis Cluster too (unit suites run once). */
const CLUSTER_SUITES = ['test/e2e'];

async function main() {
  ensureCCompiler();
  ensureInstalledAndBuilt();
  ensureBubblewrap();
  ensureSandboxNetworking();
  ensurePip();
  const args = process.argv.slice(2);
  const config = join(ROOT, 'jest.config.js');
  if (process.env.PODFLOW_TEST_REDIS === 'cluster') process.exit(await runJestWithServices(config, args, process.env, { redis: 'cluster' }));
  const narrowed = args.some((arg) => !arg.startsWith('--'));
  process.exit(await runJestWithServices(config, args, process.env, narrowed ? {} : { clusterArgs: [...args, ...CLUSTER_SUITES] }));
}

main().catch((error) => {
  say(`tests could not start: ${error.message}`);
  process.exit(1);
});
