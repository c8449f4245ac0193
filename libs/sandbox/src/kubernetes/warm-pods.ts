import { PatchStrategy, setHeaderOptions, type CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import type { SandboxLogger } from '../driver';
import { LABELS, WARM_ROLE, labelValue, warmSelector } from './pod-identity';
import { buildWarmPod, claimPatch, warmTemplate, type PodPlacement, type WarmPodClaim } from './pod-spec';
import { podStage } from './pod-state';
import type { PodResources } from './resources';

export type PodRuntime = 'python' | 'node';

export interface WarmPodPoolOptions {
  core: CoreV1Api;
  placement: PodPlacement;
  /** The resources every warm pod has: the defaults (an execution asking for others starts cold). */
  resources: PodResources;
  requestRatio: number;
  workerId: string;
  /** Warm pods per runtime the pool keeps in the namespace (shared by every worker there). */
  size: number;
  /** Pods above `size` are deleted, so workers refilling at once overshoot by at most this much. */
  maxExtra?: number;
  /** A warm pod older than this is replaced (default 30 min). */
  maxIdleMs?: number;
  logger?: SandboxLogger;
  now?: () => number;
}

const RUNTIMES: readonly PodRuntime[] = ['python', 'node'];
const DEFAULT_MAX_IDLE_MS = 30 * 60_000;

/**
 * Warm pods shared by every worker of a namespace: pods started with the default resources and no
 * tenant in them, their runner waiting for a request on stdin. An execution claims one with an
 * atomic JSON patch (`claimPatch`: exactly one claimer wins a pod), which labels it as that
 * execution's pod; from then on it is an ordinary sandbox pod (attach, answer, delete; the reaper
 * knows it). `refill()` keeps `size` waiting pods per runtime: it creates the missing ones,
 * deletes the extra ones beyond `size + maxExtra`, the ones that waited past `maxIdleMs`, and the
 * ones that ended (evicted, crashed). Any worker may refill; a claimed pod is never reused.
 * `stop()` deletes the waiting pods this worker created (the others refill), so a pool whose
 * workers have all stopped leaves none behind; a worker that dies leaves its pods to the others.
 */
export class WarmPodPool {
  private timer?: NodeJS.Timeout;
  private refilling?: Promise<void>;
  private readonly maxIdleMs: number;
  private claimed = 0;
  private missed = 0;
  private stopped = false;

  /** The template label of this worker's warm pods, per runtime (`warmTemplate`). */
  private readonly templates: Record<PodRuntime, string>;

  constructor(private readonly options: WarmPodPoolOptions) {
    this.maxIdleMs = options.maxIdleMs ?? DEFAULT_MAX_IDLE_MS;
    const template = (runtime: PodRuntime) => warmTemplate(runtime, options.resources, options.requestRatio, options.placement);
    this.templates = { python: template('python'), node: template('node') };
  }

  get namespace(): string {
    return this.options.placement.namespace;
  }

  /** Refills now and every `intervalMs`. */
  start(intervalMs: number): void {
    this.refillSoon();
    this.timer = setInterval(() => this.refillSoon(), intervalMs);
    this.timer.unref();
  }

  /** Stops refilling and deletes the waiting pods this worker created; never a pod claimed meanwhile. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.refilling;
    await Promise.all(RUNTIMES.map((runtime) => this.deleteOwn(runtime))).catch((error: unknown) =>
      this.options.logger?.warn({ error: (error as Error).message }, 'could not delete this worker\'s warm pods; other workers replace them when they are stale'),
    );
  }

  /** Deletes this worker's waiting pods of `runtime` (deleteWhileWarm: never one claimed meanwhile). */
  private async deleteOwn(runtime: PodRuntime): Promise<void> {
    const mine = `${warmSelector(runtime)},${LABELS.worker}=${labelValue(this.options.workerId)}`;
    const { items } = await this.options.core.listNamespacedPod({ namespace: this.namespace, labelSelector: mine });
    for (const pod of items) await this.deleteWhileWarm(pod);
  }

  /**
   * Deletes a warm pod, each time only at the version last read (a claim changes the pod, and the
   * delete then fails with 409 instead of ending the execution that claimed it); one that only
   * changed status (a starting pod does, often) is read again and deleted if it still waits.
   */
  private async deleteWhileWarm(listed: V1Pod): Promise<void> {
    const name = listed.metadata!.name!;
    let pod = listed;
    for (let tries = 0; tries < 5; tries++) {
      try {
        await this.options.core.deleteNamespacedPod({ name, namespace: this.namespace, gracePeriodSeconds: 0, body: { preconditions: { resourceVersion: pod.metadata!.resourceVersion! } } });
        return;
      } catch (error) {
        const code = (error as { code?: number }).code;
        if (code === 404) return;
        if (code !== 409) throw error;
        const current = await this.options.core.readNamespacedPod({ name, namespace: this.namespace }).catch((readError: { code?: number }) => {
          if (readError.code === 404) return undefined; // gone meanwhile
          throw readError;
        });
        if (!current || current.metadata?.labels?.[LABELS.role] !== WARM_ROLE || current.metadata?.deletionTimestamp) return; // gone, or claimed meanwhile: the claimer's now
        pod = current;
      }
    }
  }

  stats(): { claimed: number; missed: number } {
    return { claimed: this.claimed, missed: this.missed };
  }

  /**
   * Claims a waiting, running pod of `runtime` for one execution: its name, or undefined when
   * none could be had (the caller starts a pod cold). Tries a few candidates when other workers
   * win the race for the first ones.
   */
  async claim(runtime: PodRuntime, claim: WarmPodClaim): Promise<string | undefined> {
    try {
      return await this.tryClaim(runtime, claim);
    } catch (error) {
      // The pool is an optimisation: whatever goes wrong with it, the execution starts cold.
      this.options.logger?.warn({ runtime, error: (error as Error).message }, 'could not claim a warm pod; creating one');
      this.missed++;
      return undefined;
    }
  }

  private async tryClaim(runtime: PodRuntime, claim: WarmPodClaim): Promise<string | undefined> {
    // Only pods built as this worker would build them (another template may predate a hardening).
    const labelSelector = `${warmSelector(runtime)},${LABELS.template}=${this.templates[runtime]}`;
    const { items } = await this.options.core.listNamespacedPod({ namespace: this.namespace, labelSelector });
    const ready = items.filter((pod) => !pod.metadata?.deletionTimestamp && isWaiting(pod));
    // Oldest first (most likely ready), but not all workers on the same one: a random one of the oldest few.
    ready.sort((a, b) => created(a) - created(b));
    const candidates = ready.slice(0, 4).sort(() => Math.random() - 0.5).concat(ready.slice(4, 8));
    const now = (this.options.now ?? Date.now)();
    for (const pod of candidates) {
      const name = pod.metadata!.name!;
      // activeDeadlineSeconds counts from the pod's start, and this one has been waiting: its age is added.
      const startedAt = pod.status?.startTime ? new Date(pod.status.startTime).getTime() : created(pod);
      const activeDeadlineSeconds = Math.ceil(Math.max(0, now - startedAt) / 1000) + claim.activeDeadlineSeconds;
      try {
        await this.options.core.patchNamespacedPod(
          { name, namespace: this.namespace, body: claimPatch({ ...claim, activeDeadlineSeconds }) },
          setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
        );
        this.claimed++;
        this.refillSoon();
        return name;
      } catch (error) {
        const code = (error as { code?: number }).code;
        // 422 (the test operation failed: someone else claimed it), 409, 404 (deleted meanwhile).
        if (code !== 422 && code !== 409 && code !== 404) throw error;
      }
    }
    this.missed++;
    this.refillSoon();
    return undefined;
  }

  /** One refill pass over both runtimes (see the class comment). */
  async refill(): Promise<void> {
    for (const runtime of RUNTIMES) await this.refillRuntime(runtime);
  }

  private refillSoon(): void {
    if (this.refilling || this.stopped) return;
    this.refilling = this.refill()
      .catch((error: unknown) => this.options.logger?.warn({ error: (error as Error).message }, 'warm pod refill failed; executions start cold meanwhile'))
      .finally(() => (this.refilling = undefined));
  }

  private async refillRuntime(runtime: PodRuntime): Promise<void> {
    const now = (this.options.now ?? Date.now)();
    const { items } = await this.options.core.listNamespacedPod({ namespace: this.namespace, labelSelector: warmSelector(runtime) });
    const live = items.filter((pod) => !pod.metadata?.deletionTimestamp);
    const doomed = live.filter((pod) => hasEnded(pod) || now - created(pod) > this.maxIdleMs);
    // Pods of another template (workers configured otherwise, or before a change) are never
    // claimed here and do not count; they go when stale, as above, so workers of two
    // configurations during a rollout do not delete each other's pods over and over.
    const own = (pod: V1Pod) => pod.metadata?.labels?.[LABELS.template] === this.templates[runtime];
    const keep = live.filter((pod) => own(pod) && !doomed.includes(pod)).sort((a, b) => created(a) - created(b));
    const extra = keep.length - (this.options.size + (this.options.maxExtra ?? 1));
    // The youngest extras go: the oldest are the readiest.
    if (extra > 0) doomed.push(...keep.splice(keep.length - extra, extra));
    await Promise.all(doomed.map((pod) => this.deleteWhileWarm(pod)));
    const missing = this.options.size - keep.length;
    for (let i = 0; i < missing; i++) {
      const name = `podflow-warm-${runtime}-${randomBytes(6).toString('hex')}`;
      const pod = buildWarmPod(runtime, this.options.resources, this.options.requestRatio, this.options.placement, name, this.options.workerId);
      await this.options.core.createNamespacedPod({ namespace: this.namespace, body: pod });
    }
  }

}

const created = (pod: V1Pod): number => (pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp).getTime() : 0);

/** Its runner is up and still waiting: the container runs and has not ended. */
function isWaiting(pod: V1Pod): boolean {
  return podStage(pod).kind === 'running';
}

/** The pod will never serve: its container ended, or it failed (evicted, deadline). */
function hasEnded(pod: V1Pod): boolean {
  const kind = podStage(pod).kind;
  return kind === 'terminated' || kind === 'failed';
}
