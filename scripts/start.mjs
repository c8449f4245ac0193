#!/usr/bin/env node
// `npm start`: the embedded default on one machine. Coordinator + worker + local process sandbox,
// with a private redis-server when REDIS_URL is not set. Ctrl-C stops everything.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE_DIR, ROOT, ensureBubblewrap, ensureCCompiler, ensureSandboxNetworking, ensurePip, ensureInstalledAndBuilt, say, startRedis, stopChild } from './lib/services.mjs';

function persistentSecret() {
  const path = join(CACHE_DIR, 'file-url-secret');
  if (!existsSync(path)) {
    mkdirSync(CACHE_DIR, { recursive: true });
    writeFileSync(path, randomBytes(32).toString('hex'), { mode: 0o600 });
  }
  return readFileSync(path, 'utf8').trim();
}

async function main() {
  ensureCCompiler();
  ensureInstalledAndBuilt();
  ensureBubblewrap();
  ensureSandboxNetworking();
  ensurePip();
  const port = process.env.PORT ?? '8080';
  let redis;
  if (!process.env.REDIS_URL) {
    redis = await startRedis(join(CACHE_DIR, 'redis'));
    say(`started redis-server on 127.0.0.1:${redis.port} with a generated password (data in ${join(CACHE_DIR, 'redis')})`);
  }
  if (!process.env.PODFLOW_API_KEYS) say('PODFLOW_API_KEYS is not set: using the development key "dev-key" for tenant "default"');
  const env = {
    ...process.env,
    PORT: port,
    REDIS_URL: process.env.REDIS_URL ?? redis.url,
    PODFLOW_API_KEYS: process.env.PODFLOW_API_KEYS ?? 'dev-key=default',
    PUBLIC_URL: process.env.PUBLIC_URL ?? `http://localhost:${port}`,
    FILE_URL_SECRET: process.env.FILE_URL_SECRET ?? persistentSecret(),
    STORAGE_DIR: process.env.STORAGE_DIR ?? join(CACHE_DIR, 'files'),
  };
  // Tenant keys are the coordinator's alone: the worker runs tenant code and never needs them.
  const { PODFLOW_API_KEYS: _keys, ...workerEnv } = env;
  const children = [
    spawn(process.execPath, [join(ROOT, 'services/coordinator/dist/main.js')], { env, stdio: 'inherit' }),
    spawn(process.execPath, [join(ROOT, 'services/worker/dist/main.js')], { env: workerEnv, stdio: 'inherit' }),
  ];
  let stopping = false;
  const stopAll = async (code) => {
    if (stopping) return;
    stopping = true;
    await Promise.all(children.map((c) => stopChild(c)));
    if (redis) await redis.stop();
    process.exit(code);
  };
  for (const child of children) child.on('exit', (code) => void stopAll(code ?? 1));
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));
  say(`podflow is starting on http://localhost:${port} (API docs at /docs). Try: npm run podflow -- run examples/hmac-signature.yaml --watch`);
}

main().catch((error) => {
  say(`could not start: ${error.message}`);
  process.exit(1);
});
