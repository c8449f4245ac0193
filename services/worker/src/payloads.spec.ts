import type { ExecJob, JsonObject } from '@podflow/protocol';
import type { SandboxDriver, SandboxOutcome, SandboxRequest } from '@podflow/sandbox';
import { LocalDiskStore, PayloadStore, nodePayloadKey } from '@podflow/storage';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runExecution } from './execution';

/** Returns `{ echo: args }`: what the code saw is what comes back. */
class EchoDriver implements SandboxDriver {
  readonly name = 'echo';
  readonly requests: SandboxRequest[] = [];

  async execute(request: SandboxRequest): Promise<SandboxOutcome> {
    this.requests.push(request);
    return { status: 'succeeded', output: { echo: request.args }, logs: { stdout: '', stderr: '', truncated: false }, files: [], durationMs: 1, dispose: async () => undefined };
  }

  async close(): Promise<void> {}
}

const job = (extra: Partial<ExecJob>): ExecJob => ({
  executionId: 'r1.a.1',
  tenantId: 't1',
  runId: 'r1',
  nodeId: 'a',
  attempt: 1,
  language: 'python',
  code: 'def main(args): return args',
  timeoutMs: 1000,
  dependencies: [],
  network: false,
  enqueuedAt: 0,
  ...extra,
});

describe('runExecution with payloads', () => {
  let root: string;
  let store: LocalDiskStore;
  let driver: EchoDriver;
  const deps = () => ({ driver, store, workerId: 'w1', signal: new AbortController().signal, outputInlineMaxBytes: 1024 });

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'podflow-worker-payloads-'));
    store = new LocalDiskStore({ root, publicBaseUrl: 'http://localhost:8080', secret: 's3cret-s3cret-s3cret', defaultTtlSeconds: 60 });
    driver = new EchoDriver();
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('loads referenced args, and stores an output over the inline size beside the attempt files', async () => {
    const args: JsonObject = { data: 'z'.repeat(4000) };
    const coordinator = new PayloadStore(store, { inlineMaxBytes: 1024 });
    const argsRef = await coordinator.offload(args, (sha256) => nodePayloadKey({ tenantId: 't1', runId: 'r1', nodeId: 'a', attempt: 1, kind: 'args', sha256 }));
    const result = await runExecution(job({ argsRef }), deps());
    expect(driver.requests[0]!.args).toEqual(args);
    expect(result.status).toBe('succeeded');
    expect(result).not.toHaveProperty('output');
    expect(result.outputRef!.key).toMatch(/^tenants\/t1\/runs\/r1\/nodes\/a\/1\.output\.[0-9a-f]{64}\.json$/);
    expect(await coordinator.load(result.outputRef!)).toEqual({ echo: args });
  });

  it('keeps a small output inline and writes nothing', async () => {
    const result = await runExecution(job({ args: { n: 1 } }), deps());
    expect(result.output).toEqual({ echo: { n: 1 } });
    expect(result).not.toHaveProperty('outputRef');
    expect(await readdir(root)).toEqual([]);
  });

  it('reports SANDBOX_LOST without running the code when the args payload is missing', async () => {
    const sha256 = 'cd'.repeat(32);
    const argsRef = { key: nodePayloadKey({ tenantId: 't1', runId: 'r1', nodeId: 'a', attempt: 1, kind: 'args', sha256 }), size: 10, sha256 };
    const result = await runExecution(job({ argsRef }), deps());
    expect(driver.requests).toEqual([]);
    expect(result).toMatchObject({
      status: 'failed',
      error: { code: 'SANDBOX_LOST', nodeId: 'a', message: expect.stringMatching(/^the args of execution r1\.a\.1 could not be read before running: stored payload ".*" is missing/) },
    });
  });
});
