import { PodflowError, type Language } from '@podflow/protocol';
import { ecosystemOf } from '@podflow/workflow';
import type { RedisClient } from '@podflow/redis';
import { randomBytes } from 'node:crypto';
import type { SandboxLogger } from '../driver';
import { layerKey, type LayerManifest, type LayerSpec, type ResolvedLayer } from './layer';
import { LayerLock } from './layer-lock';

/**
 * Where layers live and how they are built: a local cache directory (process driver) or a shared
 * volume filled by builder pods (kubernetes driver). `build` must publish atomically: a build
 * that dies half-way leaves nothing that `lookup` would return.
 */
export interface LayerBackend {
  readonly name: string;
  /** Identifies the interpreter the layer is for (name, version, platform or image). */
  runtimeId(language: Language): Promise<string>;
  /** The manifest of a published, complete layer, or undefined. */
  lookup(key: string): Promise<LayerManifest | undefined>;
  /**
   * Installs and publishes the layer, or throws a PodflowError: DEPENDENCY_INSTALL_FAILED (the
   * installer failed or timed out; not retried) or SANDBOX_LOST (the builder was killed; retried).
   */
  build(spec: LayerSpec, timeoutMs: number): Promise<LayerManifest>;
  /** Records a use (LRU) and, after a build, may evict old layers past the size cap. */
  markUsed(key: string): Promise<void>;
  afterBuild?(built: LayerManifest): Promise<void>;
  /** Where the host can see the layer (process driver). */
  hostPathOf?(key: string): string;
}

export interface LayerResolverOptions {
  backend: LayerBackend;
  redis: RedisClient;
  /** Key prefix for the lock, failure and counter keys (the queue prefix plus `:`). */
  keyPrefix: string;
  /** Turns raw dependency strings into canonical sorted specs; throws INVALID_DEPENDENCY. */
  normalise: (language: Language, dependencies: readonly string[]) => string[];
  /** Bound on one install (DEPENDENCY_INSTALL_FAILED after it). */
  installTimeoutMs: number;
  /** Lease TTL of the build lock; a dead builder's build is taken over after about this. */
  lockTtlMs?: number;
  /** How often a waiter looks for the published layer. */
  pollMs?: number;
  /** How long a failed build's error is served to waiters and later executions before a retry. */
  failureTtlMs?: number;
  owner: string;
  logger?: SandboxLogger;
}

interface RecordedFailure {
  code: 'DEPENDENCY_INSTALL_FAILED';
  message: string;
}

/**
 * Makes sure the dependency layer of an execution exists, building it at most once cluster-wide
 * at a time (DESIGN.md "Dependency layers"):
 *
 * 1. no dependencies: nothing (the fast path);
 * 2. published already: use it (a cache hit never reinstalls);
 * 3. else take the layer's build lease in Redis and build, or wait for whoever holds it and use
 *    their result; if the holder dies its lease expires and a waiter takes the build over;
 * 4. a failed install is remembered for `failureTtlMs`, so twenty waiters get the installer's
 *    message once instead of trying twenty times.
 *
 * Executions of one worker asking for the same layer share one resolution.
 */
export class LayerResolver {
  private readonly lock: LayerLock;
  private readonly inFlight = new Map<string, Promise<Omit<ResolvedLayer, 'resolveMs'>>>();
  private readonly pollMs: number;
  private readonly lockTtlMs: number;
  private readonly failureTtlMs: number;

  constructor(private readonly options: LayerResolverOptions) {
    this.lockTtlMs = options.lockTtlMs ?? 30_000;
    this.pollMs = options.pollMs ?? 250;
    this.failureTtlMs = options.failureTtlMs ?? 60_000;
    this.lock = new LayerLock(options.redis, options.keyPrefix, this.lockTtlMs);
  }

  get backendName(): string {
    return this.options.backend.name;
  }

  /** Counts installs started per layer key (tests and operators read it). */
  buildsKey(): string {
    return `${this.options.keyPrefix}layer:builds`;
  }

  /** Undefined when the node declares no dependencies; throws PodflowError on failure. */
  async resolve(language: Language, dependencies: readonly string[], signal: AbortSignal): Promise<ResolvedLayer | undefined> {
    if (dependencies.length === 0) return undefined;
    const started = Date.now();
    const specs = this.options.normalise(language, dependencies);
    if (specs.length === 0) return undefined;
    const ecosystem = ecosystemOf(language);
    const runtimeId = await this.options.backend.runtimeId(language);
    const spec: LayerSpec = { key: layerKey(runtimeId, ecosystem, specs), runtimeId, ecosystem, specs };

    let shared = this.inFlight.get(spec.key);
    if (!shared) {
      shared = this.obtain(spec).finally(() => this.inFlight.delete(spec.key));
      this.inFlight.set(spec.key, shared);
    }
    const layer = await abortable(shared, signal);
    await this.options.backend.markUsed(spec.key).catch((error: unknown) => {
      this.options.logger?.warn({ key: spec.key, error: (error as Error).message }, 'could not record the use of a dependency layer');
    });
    return { ...layer, resolveMs: Date.now() - started };
  }

  private async obtain(spec: LayerSpec): Promise<Omit<ResolvedLayer, 'resolveMs'>> {
    const { backend } = this.options;
    const found = (source: ResolvedLayer['source']) => ({
      key: spec.key,
      ecosystem: spec.ecosystem,
      source,
      ...(backend.hostPathOf ? { hostPath: backend.hostPathOf(spec.key) } : {}),
    });
    if (await backend.lookup(spec.key)) return found('cache');

    const deadline = Date.now() + this.options.installTimeoutMs + 2 * this.lockTtlMs;
    let waited = false;
    while (Date.now() < deadline) {
      await this.throwRecordedFailure(spec);
      const owner = `${this.options.owner}:${randomBytes(6).toString('hex')}`;
      const lease = await this.lock.tryAcquire(spec.key, owner);
      if (lease) {
        try {
          // Published between our lookup and the lease (the previous holder finished): use it.
          if (await backend.lookup(spec.key)) return found(waited ? 'shared' : 'cache');
          await this.build(spec);
          return found('built');
        } finally {
          await lease.release();
        }
      }
      waited = true;
      await sleep(this.pollMs);
      if (await backend.lookup(spec.key)) return found('shared');
    }
    throw new PodflowError(
      'DEPENDENCY_INSTALL_FAILED',
      `timed out after ${Math.round((this.options.installTimeoutMs + 2 * this.lockTtlMs) / 1000)} s waiting for another worker to build the dependency layer of ${spec.specs.join(' ')}`,
    );
  }

  private async build(spec: LayerSpec): Promise<void> {
    const { backend, redis, logger } = this.options;
    await redis.hincrby(this.buildsKey(), spec.key, 1);
    logger?.info({ key: spec.key, specs: spec.specs, backend: backend.name }, 'building a dependency layer');
    const started = Date.now();
    try {
      const built = await backend.build(spec, this.options.installTimeoutMs);
      logger?.info({ key: spec.key, sizeBytes: built.sizeBytes, ms: Date.now() - started }, 'dependency layer published');
      await backend.afterBuild?.(built).catch((error: unknown) => {
        logger?.warn({ error: (error as Error).message }, 'dependency layer eviction failed; the cache may stay above its size cap until the next build');
      });
    } catch (error) {
      if (error instanceof PodflowError && error.code === 'DEPENDENCY_INSTALL_FAILED') {
        const failure: RecordedFailure = { code: error.code, message: error.message };
        await redis.set(this.failureKey(spec.key), JSON.stringify(failure), 'PX', this.failureTtlMs).catch(() => undefined);
      }
      throw error;
    }
  }

  private failureKey(key: string): string {
    return `${this.options.keyPrefix}layer:failed:${key}`;
  }

  private async throwRecordedFailure(spec: LayerSpec): Promise<void> {
    const recorded = await this.options.redis.get(this.failureKey(spec.key));
    if (!recorded) return;
    const failure = JSON.parse(recorded) as RecordedFailure;
    throw new PodflowError(failure.code, failure.message);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The shared promise, or CANCELED as soon as this caller's signal aborts (the build goes on for the others). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new PodflowError('CANCELED', 'execution canceled while its dependency layer was being prepared'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new PodflowError('CANCELED', 'execution canceled while its dependency layer was being prepared'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
