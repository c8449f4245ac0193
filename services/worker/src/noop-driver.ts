import type { SandboxDriver, SandboxOutcome } from '@podflow/sandbox';

/**
 * Benchmark-only driver: returns `{}` at once. It measures the orchestration (coordinator, queues,
 * worker) without any sandbox cost. Never use it for real work.
 */
export class NoopDriver implements SandboxDriver {
  readonly name = 'noop';

  async execute(): Promise<SandboxOutcome> {
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
