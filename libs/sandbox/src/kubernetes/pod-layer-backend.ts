import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { PodflowError, type Language } from '@podflow/protocol';
import type { RedisClient } from '@podflow/redis';
import { randomBytes } from 'node:crypto';
import type { SandboxLogger } from '../driver';
import { chooseEvictions } from '../layers/eviction';
import { describeDuration, installerArgv, installerOutputTail, installFailureMessage, type InstallerOptions } from '../layers/installer';
import { parseLayerManifest, type LayerManifest, type LayerSpec } from '../layers/layer';
import type { LayerBackend } from '../layers/layer-resolver';
import {
  LAYER_BUILDER_CONTAINER,
  LAYER_INSTALL_CONTAINER,
  LAYER_PREPARE_CONTAINER,
  LAYERS_VOLUME_PATH,
  buildLayerBuilderPod,
  buildLayerCleanupPod,
  layerBuilderPodName,
  manifestFromLog,
  type LayerBuilderPlacement,
} from './layer-builder-spec';
import { podStage } from './pod-state';
import { PodWatch } from './pod-watch';

/** npm inside the runtime-node image (k8s/images/runtime-node): the registry's npm package, unpacked. */
export const IMAGE_NPM_COMMAND = ['node', '/opt/podflow/npm/bin/npm-cli.js'];

export interface PodLayerBackendOptions {
  /** Told how many layers each eviction round removes (the worker's metrics). */
  onEvicted?: (count: number) => void;
  kubeConfig: KubeConfig;
  placement: LayerBuilderPlacement;
  redis: RedisClient;
  /** Prefix of the registry keys (the queue prefix plus `:`). */
  keyPrefix: string;
  installer: InstallerOptions;
  /** Size cap of the layer volume; least recently used layers are evicted past it. */
  maxBytes: number;
  minIdleMs: number;
  workerId: string;
  logger?: SandboxLogger;
}

/**
 * Dependency layers of the kubernetes driver: directories on one shared volume (a
 * PersistentVolumeClaim), built by builder pods and mounted read-only (`subPath: <key>`) into
 * execution pods. Which layers are complete is recorded in Redis when their builder reports the
 * published manifest, so a lookup costs one HGET and no pod; use is recorded in a sorted set
 * for LRU eviction. See libs/sandbox/README.md for the trade-offs against archives in S3.
 */
export class PodLayerBackend implements LayerBackend {
  readonly name = 'kubernetes';
  private readonly core: CoreV1Api;

  constructor(private readonly options: PodLayerBackendOptions) {
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
  }

  get registryKey(): string {
    return `${this.options.keyPrefix}layer:registry`;
  }

  get usageKey(): string {
    return `${this.options.keyPrefix}layer:used`;
  }

  async runtimeId(language: Language): Promise<string> {
    const { images } = this.options.placement;
    return `image:${language === 'python' ? images.python : images.node}`;
  }

  async lookup(key: string): Promise<LayerManifest | undefined> {
    const text = await this.options.redis.hget(this.registryKey, key);
    return text ? parseLayerManifest(text, key) : undefined;
  }

  async markUsed(key: string): Promise<void> {
    await this.options.redis.zadd(this.usageKey, Date.now(), key);
  }

  async build(spec: LayerSpec, timeoutMs: number): Promise<LayerManifest> {
    const name = layerBuilderPodName(spec.key);
    const staging = `${LAYERS_VOLUME_PATH}/.building/${spec.key}-${randomBytes(4).toString('hex')}`;
    const installer =
      spec.ecosystem === 'pypi'
        ? installerArgv('pypi', staging, spec.specs, { python: 'python3', npm: [] }, this.options.installer)
        : installerArgv('npm', staging, spec.specs, { python: 'python3', npm: IMAGE_NPM_COMMAND }, this.options.installer);
    const pod = buildLayerBuilderPod(
      {
        key: spec.key,
        language: spec.ecosystem === 'pypi' ? 'python' : 'node',
        installer,
        staging,
        manifest: { key: spec.key, runtimeId: spec.runtimeId, ecosystem: spec.ecosystem, specs: spec.specs, createdAt: new Date().toISOString(), builtBy: name },
        workerId: this.options.workerId,
        activeDeadlineSeconds: Math.ceil(timeoutMs / 1000),
      },
      this.options.placement,
    );
    const watch = new PodWatch(this.options.kubeConfig, this.core, this.namespace, name);
    await watch.start();
    try {
      await this.createOrAdopt(pod);
      const ending = await this.awaitEnd(watch, timeoutMs);
      if (ending === 'gone') {
        throw new PodflowError('SANDBOX_LOST', `the dependency layer builder pod ${this.namespace}/${name} was deleted before it finished; nothing was published and the next attempt builds the layer again`);
      }
      if (ending === 'timeout') {
        // A builder that never started (no such claim, unschedulable, image pull) has no log to show.
        const stage = watch.pod ? podStage(watch.pod, LAYER_PREPARE_CONTAINER) : undefined;
        if (!stage || stage.kind === 'pending') {
          throw new PodflowError('SANDBOX_START_TIMEOUT', `the dependency layer builder pod ${this.namespace}/${name} did not start within ${describeDuration(timeoutMs)}: ${stage?.problem ?? 'it stayed Pending'}; check the claim ${this.options.placement.volumeClaim} and the runtime image`);
        }
      }
      // The installer's output explains a failure or a timeout; the publisher's log has the manifest.
      const log = await this.readLog(name, ending === 'timeout' ? LAYER_INSTALL_CONTAINER : ending.kind === 'terminated' ? ending.container : LAYER_BUILDER_CONTAINER);
      if (ending === 'timeout') {
        throw new PodflowError('DEPENDENCY_INSTALL_FAILED', installFailureMessage(spec.ecosystem, spec.specs, `timed out after ${describeDuration(timeoutMs)}, see LAYER_INSTALL_TIMEOUT_MS`, installerOutputTail(log)));
      }
      if (ending.kind === 'failed') {
        throw new PodflowError('SANDBOX_LOST', `the dependency layer builder pod ${this.namespace}/${name} failed (${ending.reason}: ${ending.message}); the next attempt builds the layer again`);
      }
      if (ending.exitCode !== 0) {
        const how = ending.signal ? `killed by signal ${ending.signal}` : `exit code ${ending.exitCode}`;
        if (ending.exitCode >= 128 || ending.reason === 'OOMKilled') {
          throw new PodflowError('SANDBOX_LOST', `the dependency layer builder pod ${name} was ${ending.reason === 'OOMKilled' ? 'OOM-killed' : how}; the next attempt builds the layer again\n${installerOutputTail(log, 1024)}`);
        }
        throw new PodflowError('DEPENDENCY_INSTALL_FAILED', installFailureMessage(spec.ecosystem, spec.specs, how, installerOutputTail(log)));
      }
      const manifest = parseLayerManifest(manifestFromLog(log) ?? '', spec.key);
      if (!manifest) throw new PodflowError('SANDBOX_LOST', `the dependency layer builder pod ${name} succeeded but its log has no readable manifest; the next attempt builds the layer again`);
      await this.options.redis.hset(this.registryKey, spec.key, JSON.stringify(manifest));
      return manifest;
    } finally {
      watch.stop();
      await this.deletePod(name);
    }
  }

  /** Evicts least recently used layers past the size cap: unregistered first, then deleted by a pod. */
  async afterBuild(built: LayerManifest): Promise<void> {
    const { redis } = this.options;
    const registry = await redis.hgetall(this.registryKey);
    const used = await redis.zrange(this.usageKey, 0, -1, 'WITHSCORES');
    const lastUsed = new Map<string, number>();
    for (let i = 0; i < used.length; i += 2) lastUsed.set(used[i], Number(used[i + 1]));
    const usages = Object.entries(registry).flatMap(([key, text]) => {
      const manifest = parseLayerManifest(text, key);
      return manifest ? [{ key, sizeBytes: manifest.sizeBytes, lastUsedAt: lastUsed.get(key) ?? Date.parse(manifest.createdAt) }] : [];
    });
    const victims = chooseEvictions(usages, { maxBytes: this.options.maxBytes, minIdleMs: this.options.minIdleMs, now: Date.now(), keep: [built.key] });
    if (victims.length === 0) return;
    this.options.logger?.info({ keys: victims.map((v) => v.key), bytes: victims.reduce((sum, v) => sum + v.sizeBytes, 0) }, 'evicting dependency layers (layer volume above its size cap)');
    this.options.onEvicted?.(victims.length);
    void this.remove(victims.map((victim) => victim.key));
  }

  /**
   * Unregisters layers (from then on no new execution mounts them) and deletes them from the
   * volume with a short pod; resolves when that pod is done. Operators use it to drop a layer.
   */
  async remove(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.options.redis.hdel(this.registryKey, ...keys);
    await this.options.redis.zrem(this.usageKey, ...keys);
    await this.runCleanup(keys);
  }

  private get namespace(): string {
    return this.options.placement.namespace;
  }

  /** Creates the builder pod, or adopts the one a previous holder of the lease started. */
  private async createOrAdopt(pod: V1Pod): Promise<void> {
    const name = pod.metadata!.name!;
    try {
      await this.core.createNamespacedPod({ namespace: this.namespace, body: pod });
      return;
    } catch (error) {
      if ((error as { code?: number }).code !== 409) throw error;
    }
    const existing = await this.core.readNamespacedPod({ name, namespace: this.namespace }).catch(() => undefined);
    const phase = existing?.status?.phase;
    if (existing && !existing.metadata?.deletionTimestamp && (phase === 'Pending' || phase === 'Running')) {
      this.options.logger?.info({ pod: name }, 'adopting a running dependency layer build');
      return;
    }
    // A finished or dying builder of an earlier attempt: replace it.
    await this.deletePod(name);
    for (let i = 0; i < 100; i++) {
      try {
        await this.core.createNamespacedPod({ namespace: this.namespace, body: pod });
        return;
      } catch (error) {
        if ((error as { code?: number }).code !== 409) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    throw new PodflowError('SANDBOX_LOST', `the old dependency layer builder pod ${name} would not go away`);
  }

  private async awaitEnd(
    watch: PodWatch,
    timeoutMs: number,
  ): Promise<'gone' | 'timeout' | { kind: 'terminated'; container: string; exitCode: number; signal?: number; reason?: string } | { kind: 'failed'; reason: string; message: string }> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const ended = await watch.until((w) => {
      if (w.gone) return 'gone' as const;
      if (!w.pod) return undefined;
      // An init container that failed ends the build (the pod fails with it); its exit code says why.
      for (const container of [LAYER_PREPARE_CONTAINER, LAYER_INSTALL_CONTAINER]) {
        const init = podStage(w.pod, container);
        if (init.kind === 'terminated' && init.state.exitCode !== 0) return { kind: 'terminated' as const, container, exitCode: init.state.exitCode, signal: init.state.signal, reason: init.state.reason };
      }
      const stage = podStage(w.pod, LAYER_BUILDER_CONTAINER);
      if (stage.kind === 'terminated') return { kind: 'terminated' as const, container: LAYER_BUILDER_CONTAINER, exitCode: stage.state.exitCode, signal: stage.state.signal, reason: stage.state.reason };
      if (stage.kind === 'failed') return stage;
      // A container that can never start (a bad image, a missing config) may be any of the three.
      for (const container of [LAYER_PREPARE_CONTAINER, LAYER_INSTALL_CONTAINER, LAYER_BUILDER_CONTAINER]) {
        const waiting = podStage(w.pod, container);
        if (waiting.kind === 'pending' && waiting.hopeless) return { kind: 'failed' as const, reason: 'NotStartable', message: waiting.problem ?? `the ${container} container cannot start` };
      }
      return undefined;
    }, timeout);
    return ended ?? 'timeout';
  }

  /** The end of one container's log; package code writes the installer's, so it is bounded in bytes too. */
  private async readLog(name: string, container: string): Promise<string> {
    try {
      return await this.core.readNamespacedPodLog({ name, namespace: this.namespace, container, tailLines: 400, limitBytes: 256 * 1024 });
    } catch {
      return '';
    }
  }

  private async deletePod(name: string): Promise<void> {
    await this.core.deleteNamespacedPod({ name, namespace: this.namespace, gracePeriodSeconds: 0 }).catch((error: { code?: number }) => {
      if (error.code !== 404) this.options.logger?.warn({ pod: name, error: String(error) }, 'could not delete a dependency layer builder pod');
    });
  }

  /** Deletes evicted layers and stale staging directories on the volume, in a short pod (`CLEANUP_SCRIPT`). */
  private async runCleanup(keys: string[]): Promise<void> {
    const name = `podflow-layer-gc-${randomBytes(5).toString('hex')}`;
    const pod = buildLayerCleanupPod({ name, keys, workerId: this.options.workerId }, this.options.placement);
    const watch = new PodWatch(this.options.kubeConfig, this.core, this.namespace, name);
    try {
      await watch.start();
      await this.core.createNamespacedPod({ namespace: this.namespace, body: pod });
      const ending = await this.awaitEnd(watch, 300_000);
      if (ending === 'gone' || ending === 'timeout' || ending.kind === 'failed' || ending.exitCode !== 0) {
        this.options.logger?.warn({ keys, ending }, 'the layer cleanup pod did not finish; the directories stay on the volume until the next cleanup');
      }
    } catch (error) {
      this.options.logger?.warn({ error: String(error), keys }, 'could not remove evicted dependency layers from the volume');
    } finally {
      watch.stop();
      await this.deletePod(name);
    }
  }
}
