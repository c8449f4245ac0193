import { PodflowError } from '@podflow/protocol';
import type { SandboxDriver, SandboxOutcome, SandboxRequest } from '../driver';
import type { LayerResolver } from './layer-resolver';

/**
 * Puts dependency layers in front of a driver: resolves (and if needed builds) the layer of a
 * request that declares dependencies, then lets the driver mount it. A request without
 * dependencies goes straight through: nothing is installed, looked up or mounted.
 */
export class LayerResolvingDriver implements SandboxDriver {
  readonly name: string;

  constructor(
    private readonly inner: SandboxDriver,
    private readonly resolver: LayerResolver,
  ) {
    this.name = inner.name;
  }

  async execute(request: SandboxRequest, signal: AbortSignal, handOver?: Promise<void>): Promise<SandboxOutcome> {
    if (request.dependencies.length === 0) return this.inner.execute(request, signal, handOver);
    const started = Date.now();
    let layer;
    try {
      layer = await this.resolver.resolve(request.language, request.dependencies, signal);
    } catch (error) {
      if (!(error instanceof PodflowError)) throw error;
      return {
        status: 'failed',
        error: { code: error.code, message: error.message },
        logs: { stdout: '', stderr: '', truncated: false },
        files: [],
        durationMs: Date.now() - started,
        dispose: async () => undefined,
      };
    }
    const outcome = await this.inner.execute({ ...request, layer }, signal, handOver);
    return layer ? { ...outcome, layer: { key: layer.key, source: layer.source, resolveMs: layer.resolveMs } } : outcome;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
