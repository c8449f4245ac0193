import type { SandboxDriver, SandboxOutcome } from '@podflow/sandbox';

/**
 * Benchmark-only driver: returns `{}` at once, or after `delayMs` (work that occupies a worker
 * slot, for tests and benchmarks of dispatch). It measures the orchestration (coordinator, queues,
 * worker) without any sandbox cost. Never use it for real work.
 */
export class NoopDriver implements SandboxDriver {
  readonly name = 'noop';

  constructor(private readonly delayMs = 0) {}

  async execute(): Promise<SandboxOutcome> {
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return {
      status: 'succeeded',
      output: {},
      logs: { stdout: '', stderr: '', truncated: false },
      files: [],
      durationMs: 0,
      dispose: async () => undefined,
    };
  }

  async close(): Promise<void> {}
}
