import { cancelChannel, canceledSetKey } from '@podflow/protocol';
import type { RedisClient } from '@podflow/redis';

/**
 * Knows which executions run in this worker and aborts them when the coordinator announces a
 * cancel on pub/sub. An execution canceled before it started is found in the canceled set instead.
 */
export class CancellationRegistry {
  private readonly running = new Map<string, AbortController>();

  constructor(
    private readonly subscriber: RedisClient,
    private readonly commands: RedisClient,
    private readonly prefix: string,
  ) {}

  async start(): Promise<void> {
    this.subscriber.on('message', (_channel: string, executionId: string) => this.abort(executionId, 'canceled'));
    await this.subscriber.subscribe(cancelChannel(this.prefix));
  }

  async isCanceled(executionId: string): Promise<boolean> {
    return (await this.commands.sismember(canceledSetKey(this.prefix), executionId)) === 1;
  }

  register(executionId: string): AbortController {
    const controller = new AbortController();
    this.running.set(executionId, controller);
    return controller;
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
}
