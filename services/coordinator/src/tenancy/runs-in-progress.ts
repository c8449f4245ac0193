import { Inject, Injectable } from '@nestjs/common';
import { PodflowError, isTerminalRunPhase } from '@podflow/protocol';
import type { CoordinatorConfig } from '../config';
import { RunStore } from '../orchestration/run-store';
import { CONFIG } from '../tokens';
import { TenantDirectory } from './tenant-directory';

/** Runs looked at, oldest first, when a tenant is at its limit: some may have ended without being taken off. */
const RECHECK = 50;

/**
 * The work a tenant may have waiting: runs started and not finished, its record's
 * `maxRunsInProgress`, else TENANT_MAX_RUNS_IN_PROGRESS (0: no limit). This bounds its queued
 * nodes (ready nodes past its in-flight cap wait in their runs) without counting nodes one by
 * one. A run is counted from creation (`RunStore.listRun`) until its `run_finished` command is
 * carried out. Past the limit: 429 TOO_MANY_REQUESTS naming it (a queue submission waits
 * instead). Soft by the submissions checked at the same moment: they may all pass at N-1.
 */
@Injectable()
export class RunsInProgressLimit {
  constructor(
    private readonly store: RunStore,
    private readonly directory: TenantDirectory,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  /** @throws PodflowError TOO_MANY_REQUESTS (details.retryAfterSeconds) when the tenant is at its limit. */
  async check(tenantId: string): Promise<void> {
    const limit = (await this.directory.tenantSettings(tenantId)).maxRunsInProgress ?? this.config.TENANT_MAX_RUNS_IN_PROGRESS;
    if (limit === 0) return;
    const { total: counted, oldest } = await this.store.runsInProgress(tenantId, RECHECK);
    if (counted < limit) return;
    // Counted but over: a run whose creation failed after it was listed, or whose end is still
    // in its outbox. Taken off here, so a crash never leaves a tenant locked out. A run without
    // a record is left a minute: it may be being created right now.
    const now = Date.now();
    const statuses = await Promise.all(oldest.map(async ({ id }) => (await this.store.record(id).catch(() => undefined))?.status));
    const ended = oldest.filter(({ createdAt }, i) => (statuses[i] === undefined ? now - createdAt > 60_000 : isTerminalRunPhase(statuses[i]!))).map(({ id }) => id);
    await this.store.endInProgress(tenantId, ended);
    const total = counted - ended.length;
    if (total < limit) return;
    throw new PodflowError(
      'TOO_MANY_REQUESTS',
      `tenant "${tenantId}" may have ${limit} runs in progress and has ${total} (maxRunsInProgress: the tenant's setting, else TENANT_MAX_RUNS_IN_PROGRESS); retry when some have finished`,
      { retryAfterSeconds: 5, limit: 'maxRunsInProgress', value: limit },
    );
  }
}
