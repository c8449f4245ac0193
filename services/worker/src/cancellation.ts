import { cancelChannel, canceledSetKey } from '@podflow/protocol';
import type { RedisClient } from '@podflow/redis';

/** Execution ids canceled on pub/sub that this worker remembers (oldest forgotten first). */
const REMEMBERED_CANCELS = 10_000;

/**
 * Knows which executions run in this worker and aborts them when the coordinator announces a
 * cancel on pub/sub. Cancels it hears are remembered for a while, so one that arrives between
 * taking a job and registering it still aborts it; an execution canceled before this worker
 * subscribed is found in the canceled set (`checkCanceled`).
 */
export class CancellationRegistry {
  private readonly running = new Map<string, AbortController>();
  /** Insertion-ordered: the first entry is the oldest. */
  private readonly heard = new Set<string>();

  constructor(
    private readonly subscriber: RedisClient,
    private readonly commands: RedisClient,
    private readonly prefix: string,
  ) {}

  async start(): Promise<void> {
    this.subscriber.on('message', (_channel: string, executionId: string) => this.heardCancel(executionId));
    await this.subscriber.subscribe(cancelChannel(this.prefix));
  }

  /**
   * Registers an execution about to run. Its controller is already aborted when its cancel was
   * heard before; `checkCanceled` then covers cancels from before this worker listened.
   */
  register(executionId: string): AbortController {
    const controller = new AbortController();
    this.running.set(executionId, controller);
    if (this.heard.has(executionId)) controller.abort('canceled');
    return controller;
  }

  /**
   * Looks the execution up in the canceled set and aborts it if it is there. Run alongside the
   * start of the sandbox rather than before it (the driver hands the code over only after it
   * answered: `handOver`), so the lookup costs no round trip on the way to the sandbox.
   * Resolves to whether it was canceled; rejects if Redis cannot answer.
   */
  async checkCanceled(executionId: string, controller: AbortController): Promise<boolean> {
    const canceled = await this.inCanceledSet(executionId);
    if (canceled && !controller.signal.aborted) controller.abort('canceled');
    return canceled;
  }

  /** Whether the execution was canceled (heard here, or in the canceled set). */
  async isCanceled(executionId: string): Promise<boolean> {
    return this.heard.has(executionId) || (await this.inCanceledSet(executionId));
  }

  private async inCanceledSet(executionId: string): Promise<boolean> {
    return (await this.commands.sismember(canceledSetKey(this.prefix), executionId)) === 1;
  }

  unregister(executionId: string): void {
    this.running.delete(executionId);
  }

  abort(executionId: string, reason: 'canceled' | 'shutdown'): void {
    this.running.get(executionId)?.abort(reason);
  }

  abortAll(reason: 'canceled' | 'shutdown'): void {
    for (const controller of this.running.values()) controller.abort(reason);
  }

  get size(): number {
    return this.running.size;
  }

  async stop(): Promise<void> {
    await this.subscriber.unsubscribe().catch(() => undefined);
  }

  private heardCancel(executionId: string): void {
    this.heard.add(executionId);
    if (this.heard.size > REMEMBERED_CANCELS) this.heard.delete(this.heard.values().next().value as string);
    this.abort(executionId, 'canceled');
  }
}
