import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import type { SandboxLogger } from '../driver';
import { LAYER_BUILDER_SELECTOR } from './layer-builder-spec';
import { ANNOTATIONS, SANDBOX_SELECTOR } from './pod-identity';

export interface PodReaperOptions {
  core: CoreV1Api;
  namespace: string;
  /** Whether the execution may still need its pod (its job is queued or running). */
  isActive: (executionId: string) => Promise<boolean>;
  /** Pods younger than this are left alone: their job may not be marked active yet. Default 60 s. */
  minAgeMs?: number;
  now?: () => number;
  logger?: SandboxLogger;
}

export type ReapReason = 'deadline' | 'inactive' | 'unlabelled' | 'finished-builder';

/**
 * Deletes sandbox pods nobody will collect: those whose execution is no longer active in the
 * queue (finished, failed, removed), and those that outlived their deadline; and finished layer
 * builder pods a dead worker left behind (a running one is adopted by the next build instead). Workers delete their
 * own pods; this catches what a crash, a lost delete or a dead worker left behind.
 */
export class PodReaper {
  private timer?: NodeJS.Timeout;
  private sweeping?: Promise<unknown>;

  constructor(private readonly options: PodReaperOptions) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      this.sweeping ??= this.sweep()
        .catch((error: unknown) => this.options.logger?.warn({ error: (error as Error).message }, 'pod reaper sweep failed'))
        .finally(() => (this.sweeping = undefined));
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.sweeping;
  }

  /** One pass; returns what it deleted and why. */
  async sweep(): Promise<{ pod: string; reason: ReapReason }[]> {
    const now = (this.options.now ?? Date.now)();
    const minAgeMs = this.options.minAgeMs ?? 60_000;
    const { items } = await this.options.core.listNamespacedPod({ namespace: this.options.namespace, labelSelector: SANDBOX_SELECTOR });
    const reaped: { pod: string; reason: ReapReason }[] = [];
    for (const pod of items) {
      const reason = await this.verdict(pod, now, minAgeMs);
      if (!reason) continue;
      const name = pod.metadata!.name!;
      await this.options.core.deleteNamespacedPod({ name, namespace: this.options.namespace, gracePeriodSeconds: 0 }).catch((error: { code?: number }) => {
        if (error.code !== 404) throw error;
      });
      this.options.logger?.info({ pod: name, reason, executionId: pod.metadata?.annotations?.[ANNOTATIONS.executionId] }, 'reaped a sandbox pod');
      reaped.push({ pod: name, reason });
    }
    // Layer builders whose worker died before deleting them: finished, and older than the minimum age.
    const builders = await this.options.core.listNamespacedPod({ namespace: this.options.namespace, labelSelector: LAYER_BUILDER_SELECTOR });
    for (const pod of builders.items) {
      const phase = pod.status?.phase;
      const created = pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp).getTime() : now;
      if (pod.metadata?.deletionTimestamp || (phase !== 'Succeeded' && phase !== 'Failed') || now - created < minAgeMs) continue;
      const name = pod.metadata!.name!;
      await this.options.core.deleteNamespacedPod({ name, namespace: this.options.namespace, gracePeriodSeconds: 0 }).catch((error: { code?: number }) => {
        if (error.code !== 404) throw error;
      });
      this.options.logger?.info({ pod: name }, 'reaped a finished dependency layer builder pod');
      reaped.push({ pod: name, reason: 'finished-builder' });
    }
    return reaped;
  }

  private async verdict(pod: V1Pod, now: number, minAgeMs: number): Promise<ReapReason | undefined> {
    if (pod.metadata?.deletionTimestamp) return undefined;
    const deadline = Date.parse(pod.metadata?.annotations?.[ANNOTATIONS.deadline] ?? '');
    if (Number.isFinite(deadline) && now > deadline) return 'deadline';
    const created = pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp).getTime() : now;
    if (now - created < minAgeMs) return undefined;
    const executionId = pod.metadata?.annotations?.[ANNOTATIONS.executionId];
    if (!executionId) return 'unlabelled';
    return (await this.options.isActive(executionId)) ? undefined : 'inactive';
  }
}
