import { DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { PodflowClient, type RunView } from '@podflow/client';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { QUEUE_NAMES, queuePrefix } from '@podflow/protocol';
import { checkRedisConfig, connectRedis, isCluster, redisConfigShape, redisNodes, type RedisClient } from '@podflow/redis';
import { Queue } from 'bullmq';
import { z } from 'zod';
import { RunKeys } from '../../services/coordinator/src/orchestration/run-keys';

export const ROOT = resolve(__dirname, '../..');
export const API_KEY = 'test-key';
export const TENANT = 'acme';

export interface Stack {
  url: string;
  /** QUEUE_PREFIX of this stack's services: every key they write starts with `<prefix>:`. */
  prefix: string;
  client: PodflowClient;
  /** The test Redis: one redis-server, or the Redis Cluster with PODFLOW_TEST_REDIS=cluster. */
  redis: RedisClient;
  /** The coordinator's key layout under this stack's prefix (run, event and tenant keys). */
  keys: RunKeys;
  /** The BullMQ `prefix` option of queue `name` (its hash tag included). */
  bullPrefix(name: string): string;
  storageDir: string;
  /** With `storage: 's3'`: the key prefix this stack's objects live under in the test bucket. */
  s3Prefix?: string;
  workers: ChildProcess[];
  startWorker(env?: Record<string, string>): Promise<ChildProcess>;
  /** Another coordinator, once ready; `extra` is added to its environment (give it its own PORT). */
  startCoordinator(extra?: Record<string, string>): Promise<ChildProcess>;
  /** Another coordinator, without waiting for it to be ready (it may be meant to die first). */
  spawnCoordinator(extra?: Record<string, string>): ChildProcess;
  /** Everything the services printed, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

/** The private MinIO that `npm test` starts (scripts/lib/services.mjs runJestWithServices). */
export interface TestS3 {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export function testS3(): TestS3 {
  const { PODFLOW_TEST_S3_ENDPOINT: endpoint, PODFLOW_TEST_S3_BUCKET: bucket, AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = process.env;
  if (!endpoint || !bucket || !accessKeyId || !secretAccessKey) {
    throw new Error('PODFLOW_TEST_S3_ENDPOINT, PODFLOW_TEST_S3_BUCKET and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set: run the suites with `npm test`, which starts a private MinIO');
  }
  return { endpoint, bucket, accessKeyId, secretAccessKey };
}

/** Deletes every object under `prefix` in the test bucket. */
export async function deleteS3Prefix(s3: TestS3, prefix: string): Promise<void> {
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
  try {
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix, ContinuationToken: token }));
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length > 0) await client.send(new DeleteObjectsCommand({ Bucket: s3.bucket, Delete: { Objects: keys } }));
      token = page.NextContinuationToken;
    } while (token);
  } finally {
    client.destroy();
  }
}

export function redisUrl(): string {
  const url = process.env.REDIS_URL;
  if (!url) throw new Error('REDIS_URL is not set: run the suites with `npm test`, which starts a private redis-server');
  return url;
}

/** Whether the suites run against the Redis Cluster `npm test` starts (PODFLOW_TEST_REDIS=cluster). */
export function onRedisCluster(): boolean {
  return process.env.PODFLOW_TEST_REDIS === 'cluster';
}

/**
 * Where the test Redis is, as the services' variables: REDIS_URL, or REDIS_CLUSTER_NODES and
 * REDIS_PASSWORD with PODFLOW_TEST_REDIS=cluster (scripts/test.mjs sets them).
 */
export function redisEnv(): Record<string, string> {
  if (!onRedisCluster()) return { REDIS_URL: redisUrl() };
  const { REDIS_CLUSTER_NODES: nodes, REDIS_PASSWORD: password } = process.env;
  if (!nodes || !password) throw new Error('PODFLOW_TEST_REDIS=cluster needs REDIS_CLUSTER_NODES and REDIS_PASSWORD: run the suites with `npm test`, which starts a private Redis Cluster');
  return { REDIS_CLUSTER_NODES: nodes, REDIS_PASSWORD: password };
}

/** A connection to the test Redis, built as the services build theirs. */
export function connectTestRedis(): RedisClient {
  return connectRedis(z.object(redisConfigShape).superRefine(checkRedisConfig).parse(redisEnv()));
}

/** Every key matching `pattern` (SCAN MATCH), on every master of a cluster. */
export async function scanKeys(redis: RedisClient, pattern: string): Promise<string[]> {
  const found: string[] = [];
  for (const node of redisNodes(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
  }
  return found;
}

/** Deletes `keys`; in a cluster one by one, since one DEL may only name keys of one slot. */
export async function deleteKeys(redis: RedisClient, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  if (isCluster(redis)) await Promise.all(keys.map((key) => redis.unlink(key)));
  else for (let i = 0; i < keys.length; i += 1000) await redis.unlink(...keys.slice(i, i + 1000));
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** `what` is read when the wait fails: it may name output printed meanwhile. */
async function waitFor(check: () => Promise<boolean>, what: () => string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what()}`);
}

export interface StackOptions {
  workers?: number;
  /** Extra environment of the workers only. */
  workerEnv?: Record<string, string>;
  /** Extra environment of the coordinator and the workers, e.g. FILE_URL_TTL_SECONDS. */
  env?: Record<string, string>;
  /** Extra environment of the coordinators only (every one this stack starts), e.g. PODFLOW_ADMIN_KEY. */
  coordinatorEnv?: Record<string, string>;
  /**
   * `local` (default): files on disk under `storageDir`. `s3`: the test MinIO's bucket, under a
   * key prefix of this stack's own (`s3Prefix`), deleted by `stop()`.
   */
  storage?: 'local' | 's3';
}

/**
 * Given a fresh key prefix, starts a coordinator and `workers` workers as real processes from
 * dist/, on the shared test Redis. `stop()` kills them and deletes every key under the prefix.
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const id = randomUUID().slice(0, 8);
  const prefix = `test-${id}`;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const storageDir = mkdtempSync(join(tmpdir(), 'podflow-e2e-files-'));
  const s3 = options.storage === 's3' ? testS3() : undefined;
  const s3Prefix = s3 ? `e2e-${id}` : undefined;
  const output: string[] = [];
  const children: ChildProcess[] = [];
  const workers: ChildProcess[] = [];
  const env: Record<string, string | undefined> = {
    ...process.env,
    // Exactly one of REDIS_URL and REDIS_CLUSTER_NODES reaches the services.
    REDIS_URL: undefined,
    REDIS_CLUSTER_NODES: undefined,
    ...redisEnv(),
    QUEUE_PREFIX: prefix,
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: url,
    PODFLOW_API_KEYS: `${API_KEY}=${TENANT},other-key=globex`,
    FILE_URL_SECRET: randomBytes(24).toString('hex'),
    STORAGE_DIR: storageDir,
    LOG_LEVEL: 'warn',
    OUTBOX_SWEEP_MS: '500',
    WORKER_LOCK_DURATION_MS: '3000',
    SHUTDOWN_GRACE_MS: '2000',
    ...(s3 ? s3Env(s3, s3Prefix!) : {}),
    ...(options.env ?? {}),
  };
  /** `without`: variables this service must not get (workers never see tenant keys). */
  const launch = (script: string, extra: Record<string, string> = {}, without: string[] = []) => {
    const childEnv: Record<string, string | undefined> = { ...env, ...extra };
    for (const name of without) delete childEnv[name];
    const child = spawn(process.execPath, [join(ROOT, script)], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
    child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
    children.push(child);
    return child;
  };
  const redis = connectTestRedis();
  const bullPrefix = (name: string) => queuePrefix(prefix, name);
  const execQueue = new Queue(QUEUE_NAMES.exec, { connection: redis, prefix: bullPrefix(QUEUE_NAMES.exec) });
  const stack: Stack = {
    url,
    prefix,
    client: new PodflowClient({ url, apiKey: API_KEY }),
    redis,
    keys: new RunKeys(prefix),
    bullPrefix,
    storageDir,
    ...(s3Prefix ? { s3Prefix } : {}),
    workers,
    spawnCoordinator(extra: Record<string, string> = {}) {
      return launch('services/coordinator/dist/main.js', { ...(options.coordinatorEnv ?? {}), ...extra });
    },
    async startCoordinator(extra: Record<string, string> = {}) {
      const port = extra.PORT;
      const child = launch('services/coordinator/dist/main.js', { ...(options.coordinatorEnv ?? {}), ...extra });
      const at = port ? `http://127.0.0.1:${port}` : url;
      await waitFor(async () => (await fetch(`${at}/readyz`)).ok, () => `the coordinator on ${at} (its output and the other services'):\n${output.join('').slice(-8000)}`);
      return child;
    },
    async startWorker(extra = {}) {
      // Any free port for /healthz, /readyz and /metrics: several workers share this host.
      const child = launch('services/worker/dist/main.js', { WORKER_ID: `w${workers.length}`, WORKER_HTTP_PORT: '0', ...(options.workerEnv ?? {}), ...extra }, ['PODFLOW_API_KEYS']);
      workers.push(child);
      // Ready once its BullMQ worker shows up among the exec queue's workers.
      const expected = workers.filter((w) => w.exitCode === null && w.signalCode === null).length;
      await waitFor(async () => (await execQueue.getWorkersCount()) >= expected, () => `worker ${workers.length} (its output and the other services'):\n${output.join('').slice(-8000)}`);
      return child;
    },
    logs: () => output.join(''),
    async stop() {
      await Promise.all(children.map((c) => stopProcess(c)));
      try {
        await execQueue.close();
        await deleteKeys(redis, await scanKeys(redis, `${prefix}:*`));
      } finally {
        redis.disconnect(); // an open connection would keep Jest running
        rmSync(storageDir, { recursive: true, force: true });
      }
      if (s3 && s3Prefix) await deleteS3Prefix(s3, `${s3Prefix}/`);
    },
  };
  try {
    await stack.startCoordinator();
    for (let i = 0; i < (options.workers ?? 1); i++) await stack.startWorker();
  } catch (error) {
    // A stack that did not come up stops what it started: its processes would keep Jest running.
    await stack.stop().catch(() => undefined);
    throw error;
  }
  return stack;
}

function s3Env(s3: TestS3, keyPrefix: string): Record<string, string> {
  return {
    STORAGE: 's3',
    S3_BUCKET: s3.bucket,
    S3_ENDPOINT: s3.endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    S3_REGION: 'us-east-1',
    S3_KEY_PREFIX: keyPrefix,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: 'us-east-1',
  };
}

export function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise((resolveStop) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolveStop();
    child.once('exit', () => resolveStop());
    child.kill(signal);
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  });
}

/** When a run is submitted and followed to its end. */
export async function runToEnd(stack: Stack, workflow: unknown, inputs: Record<string, unknown> = {}, timeoutMs = 90_000): Promise<RunView> {
  const { id } = await stack.client.submitRun({ workflow, inputs: inputs as never });
  return stack.client.waitForRun(id, 100, timeoutMs);
}

/** One Code node through `POST /v1/executions?wait=true`. */
export function execute(stack: Stack, language: string, code: string, args: Record<string, unknown> = {}, timeout?: string) {
  return stack.client.execute({ language, code, args: args as never, ...(timeout ? { timeout } : {}) });
}

/**
 * What holds a run up, read straight from Redis: its status, its nodes by status, the lease and
 * its time left, its active mark, what waits in its inbox and outbox. For failure messages of
 * tests that expect every run to finish (a stuck run names the step it stopped at).
 */
export async function describeRun(stack: Stack, runId: string): Promise<string> {
  const k = stack.keys;
  const [rec, nodes, lease, leaseMs, mark, inbox, outbox] = await Promise.all([
    stack.redis.hget(k.run(runId), 'rec'),
    stack.redis.hgetall(k.nodes(runId)),
    stack.redis.get(k.lease(runId)),
    stack.redis.pttl(k.lease(runId)),
    stack.redis.zscore(k.activeRuns(), runId),
    stack.redis.xrange(k.inbox(runId), '-', '+', 'COUNT', 20),
    stack.redis.xrange(k.outbox(runId), '-', '+', 'COUNT', 20),
  ]);
  const byStatus: Record<string, string[]> = {};
  // Only the nodes something touched have a record (and the hash has a `:created` field).
  for (const [id, json] of Object.entries(nodes)) if (!id.startsWith(':')) (byStatus[(JSON.parse(json) as { status: string }).status] ??= []).push(id);
  const status = rec ? (JSON.parse(rec) as { status: string }).status : '(no record)';
  return [
    `run ${runId}: ${status}; nodes ${JSON.stringify(byStatus)}`,
    `lease ${lease ?? '(free)'} (${leaseMs} ms left); active mark ${mark ?? '(none)'} (now ${Date.now()})`,
    `inbox ${JSON.stringify(inbox.map(([, fields]) => fields[1]!.slice(0, 200)))}`,
    `outbox ${JSON.stringify(outbox.map(([, fields]) => fields[1]!.slice(0, 200)))}`,
  ].join('\n');
}
