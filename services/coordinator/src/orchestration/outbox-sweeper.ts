import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { CONFIG, LOGGER } from '../tokens';
import { Orchestrator } from './orchestrator.service';
import { RunStore } from './run-store';

/** An outbox older than this is presumed orphaned by a coordinator that died mid-flush. */
const ORPHAN_AGE_MS = 5000;

/** Periodically carries out outboxes that a dead coordinator left behind. */
@Injectable()
export class OutboxSweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer?: NodeJS.Timeout;
  private sweeping = false;

  constructor(
    private readonly store: RunStore,
    private readonly orchestrator: Orchestrator,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.sweep(), this.config.OUTBOX_SWEEP_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  async sweep(now = Date.now()): Promise<number> {
    if (this.sweeping) return 0;
    this.sweeping = true;
    try {
      const runIds = await this.store.staleOutboxes(now - ORPHAN_AGE_MS);
      for (const runId of runIds) {
        this.logger.warn({ runId }, 'carrying out an orphaned outbox');
        await this.orchestrator.flushOutbox(runId);
      }
      return runIds.length;
    } catch (error) {
      this.logger.error({ err: error }, 'outbox sweep failed');
      return 0;
    } finally {
      this.sweeping = false;
    }
  }
}
