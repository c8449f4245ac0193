import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, redisEnv, startStack, type Stack } from '../support/stack';

// Issue 13: @podflow/client is usable from another Node service as a package. `npm run
// pack:client` makes the tarballs; a fresh project installs them from disk (the rest from the
// registry) and submits over the queue with submitAndWait, getting the run's outputs back.
describe('the client SDK as a package (issue 13)', () => {
  let stack: Stack;
  let service: string;
  beforeAll(async () => {
    stack = await startStack({ workerEnv: { SANDBOX_DRIVER: 'noop' } });
    service = mkdtempSync(join(tmpdir(), 'podflow-client-user-'));
  });
  afterAll(async () => {
    await stack?.stop();
    if (service) rmSync(service, { recursive: true, force: true });
  });

  it('installs from the packed tarballs and runs a workflow over the queue, from outside the workspace', () => {
    const packed = execFileSync(process.execPath, [join(ROOT, 'scripts/pack-client.mjs'), join(service, 'packages')], { cwd: ROOT, encoding: 'utf8' });
    const tarballs = JSON.parse(packed.trim().split('\n').pop()!) as string[];
    writeFileSync(join(service, 'package.json'), JSON.stringify({ name: 'billing-service', version: '1.0.0', private: true }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', ...tarballs], { cwd: service, stdio: 'pipe' });
    writeFileSync(
      join(service, 'main.js'),
      `const { QueueSubmitter } = require('@podflow/client');
const { connectRedis, redisConfigShape, checkRedisConfig } = require('@podflow/redis');
const { z } = require('zod');
(async () => {
  const redis = connectRedis(z.object(redisConfigShape).superRefine(checkRedisConfig).parse(process.env));
  const submitter = new QueueSubmitter(redis, { prefix: process.env.QUEUE_PREFIX });
  const workflow = { id: 'from-a-package', nodes: [{ id: 'a', language: 'python', code: 'def main(args): return {}' }], output: '{ "order": inputs.order }' };
  const completion = await submitter.submitAndWait({ tenantId: 'acme', workflow, inputs: { order: 17 } }, { timeoutMs: 30000 });
  console.log(JSON.stringify(completion));
  await submitter.close();
  redis.disconnect();
})().catch((error) => { console.error(error); process.exit(1); });
`,
    );
    const ran = spawnSync(process.execPath, ['main.js'], { cwd: service, env: { PATH: process.env.PATH, ...redisEnv(), QUEUE_PREFIX: stack.prefix }, encoding: 'utf8', timeout: 60_000 });
    expect({ status: ran.status, stderr: ran.stderr }).toEqual({ status: 0, stderr: '' });
    expect(JSON.parse(ran.stdout.trim())).toMatchObject({ status: 'succeeded', tenantId: 'acme', workflowId: 'from-a-package', outputs: { order: 17 } });
  }, 180_000);
});
