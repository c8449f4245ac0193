import { PodflowError, QUEUE_NAMES, cancelChannel, canceledSetKey, queuePrefix, type ExecJob, type ExecResult, type ResultMessage } from '@podflow/protocol';
import type { RedisConnectionPlan } from '@podflow/redis';
import type { SandboxDriver, SandboxOutcome } from '@podflow/sandbox';
import { LocalDiskStore, type ObjectStore, type PutObjectInput } from '@podflow/storage';
import { Queue, type Job } from 'bullmq';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Redis } from 'ioredis';
import pino from 'pino';
import { PodflowWorker, isFinalFailure } from './worker';

// A real Redis (REDIS_URL, started by `npm test`) and real BullMQ: every execution must end with
// exactly one `finished` result on the results queue, also when BullMQ gives up on its job.
const redisUrl = process.env.REDIS_URL;
if (!redisUrl) throw new Error('REDIS_URL is not set: run this suite through `npm test`, which starts a private redis-server');
const redisPlan: RedisConnectionPlan = { mode: 'standalone', url: redisUrl, options: { maxRetriesPerRequest: null } };

/** Counts the times the code "ran"; leaves one file behind when asked. */
class CountingDriver implements SandboxDriver {
  readonly name = 'counting';
  runs = 0;

  constructor(
    private readonly withFile = false,
    private readonly runForMs = 0,
  ) {}

  async execute(): Promise<SandboxOutcome> {
    this.runs++;
    if (this.runForMs > 0) await new Promise((resolve) => setTimeout(resolve, this.runForMs));
    const files = this.withFile
      ? [{ path: 'out.txt', size: 2, sha256: createHash('sha256').update('ok').digest('hex'), open: () => Readable.from([Buffer.from('ok')]) }]
      : [];
    return { status: 'succeeded', output: { ran: this.runs }, logs: { stdout: '', stderr: '', truncated: false }, files, durationMs: 1, dispose: async () => undefined };
  }

  async close(): Promise<void> {}
}

/** Runs until its signal aborts (then CANCELED, as the real drivers end), or `runForMs` at most. */
class AbortableDriver implements SandboxDriver {
  readonly name = 'abortable';
  calls = 0;
  abortedAfterMs: number | undefined;

  constructor(private readonly runForMs: number) {}

  async execute(_request: unknown, signal: AbortSignal): Promise<SandboxOutcome> {
    this.calls++;
    const started = Date.now();
    const aborted = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.runForMs);
      const onAbort = () => {
        clearTimeout(timer);
        resolve(true);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    if (aborted) this.abortedAfterMs = Date.now() - started;
    return aborted
      ? { status: 'failed', error: { code: 'CANCELED', message: 'execution canceled' }, logs: { stdout: '', stderr: '', truncated: false }, files: [], durationMs: 0, dispose: async () => undefined }
      : { status: 'succeeded', output: {}, logs: { stdout: '', stderr: '', truncated: false }, files: [], durationMs: this.runForMs, dispose: async () => undefined };
  }

  async close(): Promise<void> {}
}

/** The local store, except that reads (args) and/or writes (files) fail as an unreachable S3 would. */
class BrokenStore extends LocalDiskStore {
  puts = 0;
  constructor(root: string, private readonly broken: { get?: boolean; put?: boolean }) {
    super({ root, publicBaseUrl: 'http://localhost:8080', secret: 's', defaultTtlSeconds: 60 });
  }

  override async put(input: PutObjectInput): Promise<void> {
    this.puts++;
    if (this.broken.put) throw new PodflowError('INTERNAL', 'put failed: cannot reach bucket "b" at http://127.0.0.1:9 (ECONNREFUSED)');
    return super.put(input);
  }

  override async get(key: string): Promise<Readable> {
    if (this.broken.get) throw new PodflowError('INTERNAL', 'get failed: cannot reach bucket "b" at http://127.0.0.1:9 (ECONNREFUSED)');
    return super.get(key);
  }
}

let redis: Redis;
let root: string;
let prefix: string;
let execQueue: Queue<ExecJob>;
let results: Queue<ResultMessage>;
const workers: PodflowWorker[] = [];

const execJob = (extra: Partial<ExecJob> = {}): ExecJob => {
  const executionId = `run-${randomUUID().slice(0, 8)}.a.1`;
  return { executionId, tenantId: 't1', runId: executionId.split('.')[0], nodeId: 'a', attempt: 1, language: 'python', code: 'def main(args): return {}', args: {}, timeoutMs: 1000, dependencies: [], network: false, enqueuedAt: Date.now(), ...extra };
};

async function startWorker(driver: SandboxDriver, store: ObjectStore, startedReportDelayMs?: number, concurrency = 1): Promise<PodflowWorker> {
  const worker = new PodflowWorker({
    redis: redisPlan,
    prefix,
    workerId: `w${workers.length}`,
    concurrency,
    lockDurationMs: 5000,
    shutdownGraceMs: 1000,
    driver,
    store,
    storeRetry: { attempts: 2, delayMs: 0 },
    ...(startedReportDelayMs !== undefined ? { startedReportDelayMs } : {}),
    logger: pino({ level: 'silent' }),
  });
  workers.push(worker);
  await worker.start();
  return worker;
}

/** Waits (bounded, not timed) for the one `finished` result of an execution. */
async function finishedResult(executionId: string): Promise<ExecResult> {
  for (let i = 0; i < 300; i++) {
    const job = await results.getJob(`finished.${executionId}`);
    if (job) return (job.data as Extract<ResultMessage, { kind: 'finished' }>).result;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no finished result for ${executionId} on the results queue`);
}

async function finishedCount(executionId: string): Promise<number> {
  const all = await results.getJobs(['waiting', 'completed', 'failed', 'delayed', 'active']);
  return all.filter((job) => job.data.kind === 'finished' && job.data.result.executionId === executionId).length;
}

async function settledState(job: Job<ExecJob>): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const state = await execQueue.getJobState(job.id!);
    if (state === 'completed' || state === 'failed') return state;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`exec job ${job.id} never settled`);
}

beforeEach(async () => {
  redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  root = await mkdtemp(join(tmpdir(), 'podflow-worker-spec-'));
  prefix = `test-${randomUUID().slice(0, 8)}`;
  execQueue = new Queue<ExecJob>(QUEUE_NAMES.exec, { connection: redis, prefix: queuePrefix(prefix, QUEUE_NAMES.exec) });
  results = new Queue<ResultMessage>(QUEUE_NAMES.results, { connection: redis, prefix: queuePrefix(prefix, QUEUE_NAMES.results) });
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
  await execQueue.obliterate({ force: true });
  await results.obliterate({ force: true });
  await execQueue.close();
  await results.close();
  redis.disconnect();
  await rm(root, { recursive: true, force: true });
});

describe('PodflowWorker: one result per execution', () => {
  it('reports a store that fails after the code ran as SANDBOX_LOST, without running the code again', async () => {
    const driver = new CountingDriver(true);
    const store = new BrokenStore(root, { put: true });
    await startWorker(driver, store);
    const exec = execJob();
    const job = await execQueue.add('exec', exec, { jobId: exec.executionId, attempts: 3, backoff: { type: 'fixed', delay: 0 } });
    const result = await finishedResult(exec.executionId);
    expect(result).toMatchObject({ status: 'failed', error: { code: 'SANDBOX_LOST', details: { stage: 'store', tries: 2 } } });
    expect(await settledState(job)).toBe('completed');
    expect(driver.runs).toBe(1);
    expect(store.puts).toBe(2);
    expect(await finishedCount(exec.executionId)).toBe(1);
  });

  it('reports SANDBOX_LOST when every attempt of a job failed before the code could run', async () => {
    const driver = new CountingDriver();
    await startWorker(driver, new BrokenStore(root, { get: true }));
    const exec = execJob({ args: undefined, argsRef: { key: 'tenants/t1/runs/r/nodes/a/1.args.x.json', size: 2, sha256: '0'.repeat(64) } });
    const job = await execQueue.add('exec', exec, { jobId: exec.executionId, attempts: 2, backoff: { type: 'fixed', delay: 0 } });
    const result = await finishedResult(exec.executionId);
    expect(await settledState(job)).toBe('failed');
    expect(result).toMatchObject({
      executionId: exec.executionId,
      status: 'failed',
      error: { code: 'SANDBOX_LOST', nodeId: 'a', details: { attemptsMade: 2, reason: expect.stringContaining('cannot reach bucket') } },
    });
    expect(driver.runs).toBe(0);
    expect(await finishedCount(exec.executionId)).toBe(1);
  });

  it('reports SANDBOX_LOST when BullMQ fails a job that stalled more often than allowed', async () => {
    const exec = execJob();
    await execQueue.add('exec', exec, { jobId: exec.executionId, attempts: 3 });
    // What BullMQ's stalled-job check (moveStalledJobsToWait) records once a job's stall count
    // passes maxStalledCount: the next worker to take it fails it instead of running it.
    await redis.hset(`${queuePrefix(prefix, QUEUE_NAMES.exec)}:${QUEUE_NAMES.exec}:${exec.executionId}`, 'defa', 'job stalled more than allowable limit');
    const driver = new CountingDriver();
    await startWorker(driver, new BrokenStore(root, {}));
    const result = await finishedResult(exec.executionId);
    expect(result).toMatchObject({ status: 'failed', error: { code: 'SANDBOX_LOST', message: expect.stringContaining('job stalled more than allowable limit (its worker died') } });
    expect(driver.runs).toBe(0);
  });

  it('reports a succeeded execution once, and nothing more', async () => {
    const driver = new CountingDriver(true);
    await startWorker(driver, new BrokenStore(root, {}));
    const exec = execJob();
    const job = await execQueue.add('exec', exec, { jobId: exec.executionId, attempts: 3 });
    const result = await finishedResult(exec.executionId);
    expect(await settledState(job)).toBe('completed');
    expect(result).toMatchObject({ status: 'succeeded', output: { ran: 1 }, files: { elements: [{ path: 'out.txt' }] } });
    expect(await finishedCount(exec.executionId)).toBe(1);
  });
});

describe('PodflowWorker: the `started` report', () => {
  /** The messages of one execution on the results queue, `started` first when there is one. */
  async function messagesOf(executionId: string): Promise<ResultMessage[]> {
    const all = await results.getJobs(['waiting', 'completed', 'failed', 'delayed', 'active']);
    const mine = all.map((job) => job.data).filter((m) => (m.kind === 'finished' ? m.result.executionId : m.kind === 'started' ? m.executionId : '') === executionId);
    return mine.sort((a, b) => Number(a.kind === 'finished') - Number(b.kind === 'finished'));
  }

  it('sends a quick execution\'s start with its result: one message, startReported false', async () => {
    await startWorker(new CountingDriver(), new BrokenStore(root, {}), 1000);
    const exec = execJob();
    await execQueue.add('exec', exec, { jobId: exec.executionId });
    await finishedResult(exec.executionId);
    const messages = await messagesOf(exec.executionId);
    expect(messages).toEqual([expect.objectContaining({ kind: 'finished', startReported: false })]);
  });

  it('reports `started` before the result of an execution still running after the delay', async () => {
    await startWorker(new CountingDriver(false, 400), new BrokenStore(root, {}), 50);
    const exec = execJob();
    await execQueue.add('exec', exec, { jobId: exec.executionId });
    await finishedResult(exec.executionId);
    const messages = await messagesOf(exec.executionId);
    expect(messages.map((m) => m.kind)).toEqual(['started', 'finished']);
    expect(messages[1]).not.toHaveProperty('startReported');
    expect(messages[0]).toMatchObject({ runId: exec.runId, nodeId: 'a', attempt: 1, workerId: 'w0' });
  });

  it('with a delay of 0 reports `started` before the code runs', async () => {
    await startWorker(new CountingDriver(), new BrokenStore(root, {}), 0);
    const exec = execJob();
    await execQueue.add('exec', exec, { jobId: exec.executionId });
    await finishedResult(exec.executionId);
    expect((await messagesOf(exec.executionId)).map((m) => m.kind)).toEqual(['started', 'finished']);
  });
});

describe('PodflowWorker: results that are ready together', () => {
  it('reports every execution exactly once when results travel in batches', async () => {
    const driver = new CountingDriver(false, 5);
    await startWorker(driver, new BrokenStore(root, {}), 1000, 8);
    const jobs = Array.from({ length: 40 }, () => execJob());
    await execQueue.addBulk(jobs.map((exec) => ({ name: 'exec', data: exec, opts: { jobId: exec.executionId } })));
    for (const exec of jobs) await settledState((await execQueue.getJob(exec.executionId))!);
    const messages = (await results.getJobs(['waiting'])).map((job) => job.data);
    const reported = messages.flatMap((m) => (m.kind === 'finished' ? [m.result.executionId] : m.kind === 'finished_batch' ? m.results.map((r) => r.result.executionId) : []));
    expect(reported.sort()).toEqual(jobs.map((j) => j.executionId).sort());
    // Eight executions at a time finish together: some results shared a message.
    expect(messages.some((m) => m.kind === 'finished_batch')).toBe(true);
    expect(messages.length).toBeLessThan(jobs.length);
    expect(driver.runs).toBe(40);
  });
});

describe('PodflowWorker: canceled executions', () => {
  it('aborts an execution that was in the canceled set before its job was taken', async () => {
    const driver = new AbortableDriver(10_000);
    await startWorker(driver, new BrokenStore(root, {}));
    const exec = execJob();
    await redis.sadd(canceledSetKey(prefix), exec.executionId);
    const job = await execQueue.add('exec', exec, { jobId: exec.executionId });
    expect(await settledState(job)).toBe('completed');
    // The set is read while the sandbox starts: the sandbox is aborted at once, long before it
    // would have finished on its own (10 s).
    expect(driver.abortedAfterMs).toBeDefined();
    expect(driver.abortedAfterMs!).toBeLessThan(5_000);
    const reported = await finishedResult(exec.executionId);
    expect(reported).toMatchObject({ status: 'failed', error: { code: 'CANCELED' } });
  });

  it('never starts an execution whose cancel it heard before taking the job', async () => {
    const driver = new AbortableDriver(10_000);
    await startWorker(driver, new BrokenStore(root, {}));
    const exec = execJob();
    // Only the announcement, not the set: what the worker heard is what stops it.
    for (let i = 0; i < 100 && (await redis.publish(cancelChannel(prefix), exec.executionId)) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const job = await execQueue.add('exec', exec, { jobId: exec.executionId });
    expect(await settledState(job)).toBe('completed');
    expect(driver.calls).toBe(0);
    expect(await finishedCount(exec.executionId)).toBe(0);
  });

  it('aborts a running execution when its cancel is announced', async () => {
    const driver = new AbortableDriver(10_000);
    await startWorker(driver, new BrokenStore(root, {}));
    const exec = execJob();
    const job = await execQueue.add('exec', exec, { jobId: exec.executionId });
    for (let i = 0; i < 300 && driver.calls === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(driver.calls).toBe(1);
    await redis.publish(cancelChannel(prefix), exec.executionId);
    expect(await settledState(job)).toBe('completed');
    expect(await finishedResult(exec.executionId)).toMatchObject({ status: 'failed', error: { code: 'CANCELED' } });
  });
});

describe('isFinalFailure', () => {
  it.each([
    ['attempts left', { attemptsMade: 1, opts: { attempts: 3 } }, false],
    ['the last attempt failed', { attemptsMade: 3, opts: { attempts: 3 } }, true],
    ['no attempts option: one try', { attemptsMade: 1, opts: {} }, true],
    ['failed for good before the attempts ran out (unrecoverable, stalled)', { attemptsMade: 0, finishedOn: 1_700_000_000_000, opts: { attempts: 3 } }, true],
  ])('%s → %s', (_name, job, final) => {
    expect(isFinalFailure(job as never)).toBe(final);
  });
});
