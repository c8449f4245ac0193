import { KubeConfig, Watch, type CoreV1Api, type V1Pod } from '@kubernetes/client-node';

/**
 * Follows one pod with a watch (never tight polling) and lets callers await a condition on it.
 * The API server ends watches now and then; the watch is then re-established from a fresh read,
 * so a deletion in between is still seen (404 → gone).
 */
export class PodWatch {
  pod: V1Pod | undefined;
  gone = false;
  private readonly waiters = new Set<() => void>();
  private request?: AbortController;
  private stopped = false;

  constructor(
    private readonly config: KubeConfig,
    private readonly core: CoreV1Api,
    private readonly namespace: string,
    private readonly name: string,
  ) {}

  /** Resolves once the watch is established (events from then on are seen). */
  async start(): Promise<void> {
    this.request = await new Watch(this.config).watch(
      `/api/v1/namespaces/${this.namespace}/pods`,
      { fieldSelector: `metadata.name=${this.name}` },
      (type, pod: V1Pod) => {
        if (type === 'DELETED') this.gone = true;
        else this.pod = pod;
        this.notify();
      },
      () => void this.restart(),
    );
  }

  /** Waits until `check` returns something other than undefined, re-checking on every change. */
  async until<T>(check: (watch: PodWatch) => T | undefined, signal?: AbortSignal): Promise<T | undefined> {
    for (;;) {
      const value = check(this);
      if (value !== undefined || signal?.aborted || this.stopped) return value;
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.waiters.delete(wake);
          signal?.removeEventListener('abort', wake);
          resolve();
        };
        this.waiters.add(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
  }

  stop(): void {
    this.stopped = true;
    this.request?.abort();
    this.notify();
  }

  private notify(): void {
    for (const wake of [...this.waiters]) wake();
  }

  private async restart(): Promise<void> {
    while (!this.stopped && !this.gone) {
      try {
        this.pod = await this.core.readNamespacedPod({ name: this.name, namespace: this.namespace });
        this.notify();
        await this.start();
        return;
      } catch (error) {
        if ((error as { code?: number }).code === 404) {
          this.gone = true;
          this.notify();
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }
}
