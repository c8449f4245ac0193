import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { CONFIG, LOGGER } from '../tokens';
import { Admission } from './admission';
import { Orchestrator } from './orchestrator.service';
import { RunStore } from './run-store';

/** Held runs offered to admission per sweep, oldest first. */
const HELD_PER_SWEEP = 50;

/**
 * Periodically (OUTBOX_SWEEP_MS):
 * - takes over runs whose owner died: a run stays in the active list while a session works on
 *   it; one listed for longer than two leases whose lease is free has events or commands nobody
 *   is carrying out;
 * - offers the runs held by admission, oldest first, their turn.
 */
@Injectable()
export class OutboxSweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer?: NodeJS.Timeout;
  private sweeping = false;

  constructor(
    private readonly store: RunStore,
    private readonly orchestrator: Orchestrator,
    private readonly admission: Admission,
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

  /** One sweep; returns the number of runs taken over. */
  async sweep(now = Date.now()): Promise<number> {
    if (this.sweeping) return 0;
    this.sweeping = true;
    try {
      let taken = 0;
      for (const runId of await this.store.staleRuns(now - 2 * this.config.RUN_LEASE_MS)) {
        if (!(await this.store.record(runId))) {
          await this.store.forgetActive(runId); // expired
          continue;
        }
        if (await this.orchestrator.takeOver(runId)) {
          this.logger.warn({ runId }, 'took over a run whose coordinator stopped working on it');
          taken += 1;
        }
      }
      const held = await this.store.heldRuns(HELD_PER_SWEEP);
      this.admission.othersWaiting = held.length > 0;
      for (const runId of held) {
        if (!(await this.store.record(runId))) await this.store.unhold(runId);
        else await this.orchestrator.takeOver(runId, true);
      }
      return taken;
    } catch (error) {
      this.logger.error({ err: error }, 'sweep failed');
      return 0;
    } finally {
      this.sweeping = false;
    }
  }
}
