// Shared helpers for `npm run bench`: a podflow stack (coordinator + one worker) as real processes
// from dist/, on a Redis given by the caller, plus small statistics helpers.
// Mirrors test/support/stack.ts (same env, same readiness checks), in plain ESM.
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PodflowClient } from '@podflow/client';
import * as protocol from '@podflow/protocol';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { ROOT, freePort, stopChild } from '../scripts/lib/services.mjs';

export const API_KEY = 'bench-key';
export const TENANT = 'bench';

/**
 * The BullMQ prefix of queue `name` under key prefix `prefix`: `queuePrefix()` where
 * @podflow/protocol has it (each queue in a hash-tagged slot of its own), else the key prefix
 * itself, as in the code before it. A namespace import, so that either build loads.
 */
export function bullPrefix(prefix, name) {
  return typeof protocol.queuePrefix === 'function' ? protocol.queuePrefix(prefix, name) : prefix;
}

async function waitFor(check, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Starts a coordinator and `workers` workers (default one; WORKER_CONCURRENCY = `concurrency`,
 * SANDBOX_DRIVER = `driver`) under a fresh QUEUE_PREFIX. `coordinatorEnv` adds variables to the
 * coordinator's environment only. `stop()` kills them all and deletes every key under the prefix.
 * The prefix has no braces: QUEUE_PREFIX is a plain namespace (Redis Cluster hash tags are the
 * coordinator's business, not the prefix's).
 */
export async function startStack({ redisUrl, concurrency, driver = 'process', workers = 1, coordinatorEnv = {}, workerEnv = {} }) {
  const prefix = `bench-${randomUUID().slice(0, 8)}`;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const storageDir = mkdtempSync(join(tmpdir(), 'podflow-bench-files-'));
  const output = [];
  const children = [];
  const env = {
    ...process.env,
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: prefix,
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: url,
    FILE_URL_SECRET: randomBytes(24).toString('hex'),
    STORAGE_DIR: storageDir,
    LOG_LEVEL: 'warn',
  };
  // API keys are the coordinator's alone: a worker that finds them drops them and warns.
  delete env.PODFLOW_API_KEYS;
  delete env.PODFLOW_ADMIN_KEY;
  const launch = (script, extra = {}) => {
    const child = spawn(process.execPath, [join(ROOT, script)], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => output.push(d.toString()));
    child.stderr.on('data', (d) => output.push(d.toString()));
    children.push(child);
    return child;
  };
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const execQueue = new Queue('exec', { connection: redis, prefix: bullPrefix(prefix, 'exec') });
  const stack = {
    url,
    prefix,
    redis,
    execQueue,
    /** Process id of the coordinator (for /proc/<pid>/status), once it is started. */
    coordinatorPid: undefined,
    /** Process ids of the workers, in start order. */
    workerPids: [],
    client: new PodflowClient({ url, apiKey: API_KEY }),
    logs: () => output.join(''),
    /** Messages the services logged at warn level or above (pino JSON lines). */
    warnings() {
      const found = [];
      for (const line of output.join('').split('\n')) {
        try {
          const entry = JSON.parse(line);
          if (entry.level >= 40) found.push(`${entry.name ?? 'service'}: ${entry.msg}`);
        } catch {
          if (line.trim()) found.push(line.trim());
        }
      }
      return [...new Set(found)];
    },
    async stop() {
      await Promise.all(children.map((c) => stopChild(c)));
      await execQueue.close();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
      redis.disconnect();
      rmSync(storageDir, { recursive: true, force: true });
    },
  };
  try {
    stack.coordinatorPid = launch('services/coordinator/dist/main.js', { PODFLOW_API_KEYS: `${API_KEY}=${TENANT}`, ...coordinatorEnv }).pid;
    await waitFor(async () => (await fetch(`${url}/readyz`)).ok, `the coordinator on ${url}:\n${stack.logs()}`);
    for (let i = 0; i < workers; i++) {
      stack.workerPids.push(launch('services/worker/dist/main.js', { WORKER_ID: `bench-w${i}`, WORKER_HTTP_PORT: '0', WORKER_CONCURRENCY: String(concurrency), SANDBOX_DRIVER: driver, ...workerEnv }).pid);
    }
    if (workers > 0) await waitFor(async () => (await execQueue.getWorkersCount()) >= workers, `the worker:\n${stack.logs()}`);
  } catch (error) {
    await stack.stop();
    throw error;
  }
  return stack;
}

/** Runs `fn` with a fresh stack and always stops it. */
export async function withStack(options, fn) {
  const stack = await startStack(options);
  try {
    return await fn(stack);
  } catch (error) {
    const logs = stack.logs().trim();
    if (logs) error.message += `\n--- service output (last 4000 chars) ---\n${logs.slice(-4000)}`;
    throw error;
  } finally {
    await stack.stop();
  }
}

/** Nearest-rank percentile of a list of numbers (p in 0..100). */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Median (mean of the two middle values for an even count). */
export function median(values) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function summary(values) {
  return { median: median(values), p95: percentile(values, 95), n: values.length };
}

export const log = (message) => process.stderr.write(`[bench] ${message}\n`);
