import { MAX_ERROR_TEXT_CHARS, PodflowError, type ExecJob, type JsonObject } from '@podflow/protocol';
import type { CollectedFile, SandboxDriver, SandboxOutcome, SandboxRequest } from '@podflow/sandbox';
import { LocalDiskStore, type ObjectStore, type PutObjectInput, type SignedUrl } from '@podflow/storage';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { runExecution, type ExecutionDeps } from './execution';

// Once the code has run, runExecution must come back with a result, whatever the store does:
// throwing would make BullMQ run the user's code again.

const job: ExecJob = {
  executionId: 'r1.a.1',
  tenantId: 't1',
  runId: 'r1',
  nodeId: 'a',
  attempt: 1,
  language: 'python',
  code: 'def main(args): return {}',
  args: {},
  timeoutMs: 1000,
  dependencies: [],
  network: false,
  enqueuedAt: 0,
};

const file = (path: string, content = 'data'): CollectedFile => ({
  path,
  size: Buffer.byteLength(content),
  sha256: createHash('sha256').update(content).digest('hex'),
  open: () => Readable.from([Buffer.from(content)]),
});

/** A driver whose code "ran" once per execute() and left `files`. */
class FilesDriver implements SandboxDriver {
  readonly name = 'files';
  runs = 0;
  disposeError?: Error;

  constructor(
    private readonly files: CollectedFile[],
    private readonly output: JsonObject = { done: true },
  ) {}

  async execute(_request: SandboxRequest): Promise<SandboxOutcome> {
    this.runs++;
    const disposeError = this.disposeError;
    return {
      status: 'succeeded',
      output: this.output,
      logs: { stdout: 'printed\n', stderr: '', truncated: false },
      files: this.files,
      durationMs: 5,
      dispose: async () => {
        if (disposeError) throw disposeError;
      },
    };
  }

  async close(): Promise<void> {}
}

/** A store over a real LocalDiskStore whose puts fail while `failures` lasts (or always). */
class FlakyStore implements ObjectStore {
  puts = 0;

  constructor(
    private readonly inner: ObjectStore,
    private failures: number,
    private readonly error: () => unknown = () => new PodflowError('INTERNAL', 'put failed: cannot reach bucket "b" at http://127.0.0.1:1 (ECONNREFUSED)'),
  ) {}

  async put(input: PutObjectInput): Promise<void> {
    this.puts++;
    if (this.failures > 0) {
      this.failures--;
      throw this.error();
    }
    await this.inner.put(input);
  }

  sign(key: string, ttlSeconds?: number): Promise<SignedUrl> {
    return this.inner.sign(key, ttlSeconds);
  }

  get(key: string): Promise<Readable> {
    return this.inner.get(key);
  }
}

describe('runExecution once the code has run', () => {
  let root: string;
  let disk: LocalDiskStore;
  const warnings: string[] = [];
  const deps = (driver: SandboxDriver, store: ObjectStore, extra: Partial<ExecutionDeps> = {}): ExecutionDeps => ({
    driver,
    store,
    workerId: 'w1',
    signal: new AbortController().signal,
    storeRetry: { attempts: 3, delayMs: 0 },
    logger: { warn: (_obj, msg) => warnings.push(msg) },
    ...extra,
  });

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'podflow-exec-spec-'));
    disk = new LocalDiskStore({ root, publicBaseUrl: 'http://localhost:8080', secret: 's', defaultTtlSeconds: 60 });
    warnings.length = 0;
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('uploads a 250-character file name (the local store once failed on its temporary name)', async () => {
    const name = `${'n'.repeat(246)}.txt`;
    const driver = new FilesDriver([file(name, 'long name'), file('ok.txt')]);
    const result = await runExecution(job, deps(driver, disk));
    expect(result).toMatchObject({ status: 'succeeded', output: { done: true } });
    expect(result.files?.elements.map((element) => element.path)).toEqual([name, 'ok.txt']);
    expect(await text(await disk.get(result.files!.elements[0].key))).toBe('long name');
  });

  it('retries only the upload after a transient store failure; the code ran once', async () => {
    const driver = new FilesDriver([file('a.txt')]);
    const store = new FlakyStore(disk, 2);
    const result = await runExecution(job, deps(driver, store));
    expect(result.status).toBe('succeeded');
    expect(result.files?.elements).toHaveLength(1);
    expect(store.puts).toBe(3);
    expect(driver.runs).toBe(1);
  });

  it('reports SANDBOX_LOST instead of throwing when the store keeps failing; the code ran once', async () => {
    const driver = new FilesDriver([file('a.txt')]);
    const store = new FlakyStore(disk, Number.POSITIVE_INFINITY);
    const result = await runExecution(job, deps(driver, store));
    expect(result).toMatchObject({
      status: 'failed',
      error: { code: 'SANDBOX_LOST', nodeId: 'a', details: { stage: 'store', tries: 3 }, message: expect.stringMatching(/^execution r1\.a\.1 ran, but its files or output could not be stored \(3 tries\): put failed: cannot reach/) },
      logs: { stdout: 'printed\n' },
    });
    expect(result.output).toBeUndefined();
    expect(store.puts).toBe(3);
    expect(driver.runs).toBe(1);
  });

  it('reports OUTPUT_INVALID at once when the store refuses the file itself', async () => {
    const driver = new FilesDriver([file('a.txt')]);
    const store = new FlakyStore(disk, 1, () => Object.assign(new Error('ENAMETOOLONG: name too long, open'), { code: 'ENAMETOOLONG' }));
    const result = await runExecution(job, deps(driver, store));
    expect(result).toMatchObject({ status: 'failed', error: { code: 'OUTPUT_INVALID', message: expect.stringContaining('ENAMETOOLONG'), details: { stage: 'store' } } });
    expect(store.puts).toBe(1);
  });

  it('refuses files the store cannot hold before uploading any, naming each', async () => {
    const driver = new FilesDriver([file('ok.txt'), file('..\\evil.txt'), file('line\nbreak')]);
    const store = new FlakyStore(disk, 0);
    const result = await runExecution(job, deps(driver, store));
    expect(result).toMatchObject({
      status: 'failed',
      error: { code: 'OUTPUT_INVALID', nodeId: 'a', details: { count: 2, files: [{ path: '..\\evil.txt' }, { path: 'line\nbreak' }] } },
    });
    expect(store.puts).toBe(0);
  });

  it('reports SANDBOX_LOST when a large output cannot be offloaded', async () => {
    const driver = new FilesDriver([], { big: 'x'.repeat(2000) });
    const store = new FlakyStore(disk, Number.POSITIVE_INFINITY);
    const result = await runExecution(job, deps(driver, store, { outputInlineMaxBytes: 100 }));
    expect(result).toMatchObject({ status: 'failed', error: { code: 'SANDBOX_LOST', details: { stage: 'store', tries: 3 } } });
    expect(store.puts).toBe(3);
  });

  it('bounds a huge error at the source and passes the driver warnings on', async () => {
    const driver: SandboxDriver = {
      name: 'failing',
      close: async () => undefined,
      execute: async () => ({
        status: 'failed',
        error: { code: 'CODE_EXECUTION_FAILED', message: 'x'.repeat(3 * 1024 * 1024), type: 'ValueError' },
        logs: { stdout: '', stderr: '', truncated: false },
        files: [],
        durationMs: 1,
        warnings: ['resources.memory 1Ti is above the operator maximum 4096Mi; using the maximum'],
        dispose: async () => undefined,
      }),
    };
    const result = await runExecution(job, deps(driver, new FlakyStore(disk, 0)));
    expect(result.error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', type: 'ValueError', nodeId: 'a' });
    expect(result.error!.message).toBe(`${'x'.repeat(MAX_ERROR_TEXT_CHARS)}… [truncated: ${3 * 1024 * 1024} characters in all]`);
    expect(result.warnings).toEqual(['resources.memory 1Ti is above the operator maximum 4096Mi; using the maximum']);
  });

  it('still returns the result when freeing the sandbox fails', async () => {
    const driver = new FilesDriver([]);
    driver.disposeError = new Error('EBUSY: rm failed');
    const result = await runExecution(job, deps(driver, disk));
    expect(result.status).toBe('succeeded');
    expect(warnings).toEqual(['could not free the sandbox leftovers of a finished execution']);
  });

  it('throws, before running any code, when the args cannot be loaded (so BullMQ may retry)', async () => {
    const driver = new FilesDriver([]);
    const store = new FlakyStore(disk, 0);
    store.get = async () => {
      throw new PodflowError('INTERNAL', 'get failed: cannot reach bucket "b"');
    };
    const withRef: ExecJob = { ...job, args: undefined, argsRef: { key: 'tenants/t1/runs/r1/nodes/a/1.args.x.json', size: 2, sha256: '0'.repeat(64) } };
    await expect(runExecution(withRef, deps(driver, store))).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(driver.runs).toBe(0);
  });
});
