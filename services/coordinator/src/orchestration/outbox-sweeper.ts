import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { releaseOrder } from '../tenancy/dispatch-policy';
import { CONFIG, LOGGER } from '../tokens';
import { Admission } from './admission';
import { GivenUpSweep } from './given-up-sweep';
import { Orchestrator } from './orchestrator.service';
import { RunStore } from './run-store';

/**
 * A mark whose run has no record is forgotten once it is this old: a creation marks its run
 * before it writes it, and one that stalls (GC, a slow object store for large inputs) must not
 * find its mark forgotten when it writes the run, or the run would have none if it died then.
 */
export const forgetRecordlessAfterMs = (leaseMs: number) => Math.max(60_000, 10 * leaseMs);

/** Stale marks read per page, and at most this many pages per sweep. */
const STALE_PAGE = 100;
const STALE_PAGES = 10;

/** Held runs of one tenant offered their turn per pass, oldest first. */
const HELD_PER_TENANT = 50;
/** Every this many sweeps: given-up executions are reported, and executions that left `exec` without a result stop counting against their tenant. */
const RECONCILE_EVERY_SWEEPS = 5;
/** Only executions admitted at least this long ago are checked (a younger one is surely still queued or running). */
const RECONCILE_AFTER_MS = 30_000;

/**
 * Periodically (OUTBOX_SWEEP_MS):
 * - takes over runs whose owner died: a run stays in the active list while a session works on
 *   it; one listed for longer than two leases whose lease is free has events or commands nobody
 *   is carrying out;
 * - gives the runs held by admission their turn: tenant by tenant, the tenant using least of its
 *   share first (fair dispatch) or the one waiting longest (FIFO), each tenant's runs oldest
 *   first. A result of a tenant with held runs gives them their turn at once (`releaseSoon`), so a
 *   tenant at its cap continues as soon as one of its executions ends;
 * - every few sweeps, reports executions the queue gave up on whose workers never reported them
 *   (GivenUpSweep), and (fair dispatch) reconciles the tenants' in-flight sets with `exec`
 *   (DispatchStore.reconcile).
 */
@Injectable()
export class OutboxSweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer?: NodeJS.Timeout;
  private sweeping = false;
  /** Sweeps and releases under way: shutdown waits for them before the connections close. */
  private readonly inFlight = new Set<Promise<unknown>>();
  private sweeps = 0;
  /** Tenants whose held runs are being released now, and ones due again right after. */
  private readonly releasing = new Map<string, boolean>();
  private closed = false;

  constructor(
    private readonly store: RunStore,
    private readonly orchestrator: Orchestrator,
    private readonly admission: Admission,
    private readonly givenUp: GivenUpSweep,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.sweep(), this.config.OUTBOX_SWEEP_MS);
    this.timer.unref();
  }

  /** Starts nothing new and waits for what is under way (a sweep past this point would only find closed connections). */
  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await Promise.allSettled([...this.inFlight]);
  }

  /** One sweep; returns the number of runs taken over. */
  sweep(now = Date.now()): Promise<number> {
    if (this.sweeping || this.closed) return Promise.resolve(0);
    return this.track(this.sweepOnce(now));
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work)).catch(() => undefined);
    return work;
  }

  private async sweepOnce(now: number): Promise<number> {
    this.sweeping = true;
    try {
      let taken = 0;
      // Page after page while pages come back full: marks that stay (young record-less ones, runs
      // whose live session holds the lease) must not hide the runs behind them. At most a page of
      // take-overs per sweep (each drains a whole session; held runs and the rest wait behind).
      for (let page = 0, offset = 0; page < STALE_PAGES && taken < STALE_PAGE; page++) {
        const runIds = await this.store.staleRuns(now - 2 * this.config.RUN_LEASE_MS, STALE_PAGE, offset);
        for (const runId of runIds) {
          if (taken >= STALE_PAGE) break;
          if (!(await this.store.exists(runId))) {
            // Expired, or never stored (a creation that lost its idempotency race, or failed): forgotten
            // once no creation can still be writing it (a young mark may be one under way).
            if (!(await this.store.forgetActiveIfOlder(runId, now - forgetRecordlessAfterMs(this.config.RUN_LEASE_MS)))) offset += 1;
            continue;
          }
          // Taken over, it was marked anew (a later score) and is no longer at this offset; otherwise it stays.
          if (await this.orchestrator.takeOver(runId)) {
            this.logger.warn({ runId }, 'took over a run whose coordinator stopped working on it');
            taken += 1;
          } else offset += 1;
        }
        if (runIds.length < STALE_PAGE) break;
      }
      await this.releaseHeld(now);
      if (++this.sweeps % RECONCILE_EVERY_SWEEPS === 0) {
        // Apart from the rest: a failing pass leaves its cursor and is tried again; the reconcile goes on.
        await this.givenUp.sweep().catch((error: unknown) => this.logger.error({ err: error }, 'given-up sweep failed; the next one tries again'));
        if (this.admission.policy.fair) {
          const removed = await this.admission.store.reconcile(RECONCILE_AFTER_MS, now);
          if (removed > 0) this.logger.info({ removed }, 'executions that left exec without a result no longer count against their tenants');
        }
      }
      return taken;
    } catch (error) {
      this.logger.error({ err: error }, 'sweep failed');
      return 0;
    } finally {
      this.sweeping = false;
    }
  }

  /** A result of `tenantId` arrived: if it has held runs, they get their turn now rather than at the next sweep. */
  releaseSoon(tenantId: string): void {
    if (!this.admission.policy.fair || !this.admission.heldTenants.has(tenantId) || this.closed) return;
    if (this.releasing.has(tenantId)) {
      this.releasing.set(tenantId, true);
      return;
    }
    this.releasing.set(tenantId, false);
    void this.track(this.releaseWhileAsked(tenantId));
  }

  /** Releases the tenant's held runs, again while results asked for it meanwhile. */
  private async releaseWhileAsked(tenantId: string): Promise<void> {
    try {
      do {
        this.releasing.set(tenantId, false);
        await this.releaseTenant(tenantId);
      } while (this.releasing.get(tenantId) && !this.closed);
    } catch (error) {
      this.logger.error({ err: error, tenantId }, 'releasing held runs failed; the next sweep retries');
    } finally {
      this.releasing.delete(tenantId);
    }
  }

  private async releaseHeld(now: number): Promise<void> {
    // Runs held before per-tenant lists existed move to their tenant's list.
    for (const runId of await this.store.legacyHeldRuns(HELD_PER_TENANT)) {
      const record = await this.store.record(runId);
      if (record) await this.store.hold(runId, record.tenantId, now);
      await this.store.forgetLegacyHeld(runId);
    }
    const tenants = await this.store.heldTenants();
    this.admission.othersWaiting = tenants.length > 0;
    this.admission.heldTenants.clear();
    for (const tenantId of tenants) this.admission.heldTenants.add(tenantId);
    if (!this.admission.policy.fair) return this.releaseOldestFirst(tenants, now);
    let order = tenants;
    if (tenants.length > 1) {
      const [inFlight, dispatch] = await Promise.all([Promise.all(tenants.map((id) => this.admission.store.inFlight(id))), Promise.all(tenants.map((id) => this.admission.dispatchFor(id)))]);
      order = releaseOrder(tenants.map((id, i) => ({ id, inFlight: inFlight[i]!, weight: dispatch[i]!.weight })));
    }
    for (const tenantId of order) {
      if (this.closed) return;
      await this.releaseTenant(tenantId, now);
    }
  }

  /** First come first served (FAIR_DISPATCH=false): the runs waiting longest, whatever their tenant. */
  private async releaseOldestFirst(tenants: string[], now: number): Promise<void> {
    const held = (await Promise.all(tenants.map(async (tenantId) => ({ tenantId, runs: await this.store.heldRunsWithTimes(tenantId, HELD_PER_TENANT) }))))
      .flatMap(({ tenantId, runs }) => runs.map((run) => ({ tenantId, ...run })))
      .sort((a, b) => a.since - b.since)
      .slice(0, HELD_PER_TENANT);
    for (const { tenantId, runId } of held) {
      if (this.closed) return;
      if (!(await this.store.exists(runId))) await this.store.unhold(runId, tenantId);
      else await this.orchestrator.takeOver(runId, true, tenantId);
    }
    for (const tenantId of tenants) if (await this.store.forgetHeldTenant(tenantId, now)) this.admission.heldTenants.delete(tenantId);
  }

  /**
   * Offers a tenant's held runs their turn, oldest first, until one stays held (its cap, or the
   * global one). A tenant left with none is no longer held: its new work goes straight in again.
   */
  private async releaseTenant(tenantId: string, now = Date.now()): Promise<void> {
    const runs = await this.store.heldRuns(tenantId, HELD_PER_TENANT);
    for (const runId of runs) {
      if (this.closed) return;
      if (!(await this.store.exists(runId))) {
        await this.store.unhold(runId, tenantId); // expired
        continue;
      }
      await this.orchestrator.takeOver(runId, true, tenantId);
      if (await this.store.isHeld(runId, tenantId)) return;
    }
    if (runs.length < HELD_PER_TENANT && (await this.store.forgetHeldTenant(tenantId, now))) this.admission.heldTenants.delete(tenantId);
  }
}
