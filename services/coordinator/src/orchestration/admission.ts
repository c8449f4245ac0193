import { Inject, Injectable } from '@nestjs/common';
import type { ExecJob } from '@podflow/protocol';
import type { RedisClient } from '@podflow/redis';
import type { Queue } from 'bullmq';
import type { CoordinatorConfig } from '../config';
import { dispatchOf, dispatchPriority, type DispatchPolicy, type TenantDispatch } from '../tenancy/dispatch-policy';
import { CONFIG, EXEC_QUEUE, REDIS } from '../tokens';
import { DispatchStore } from './dispatch-store';
import { RunStore } from './run-store';
import { TenantDirectory } from '../tenancy/tenant-directory';

/** One ready execution asking to go onto `exec`. */
export interface AdmissionRequest {
  job: ExecJob;
  delayMs: number;
}

/** What admission decided for one run's ready executions. */
export interface AdmissionDecision {
  /** How many, from the front, go onto `exec` now; the rest stay in the run's outbox. */
  admitted: number;
  /** The BullMQ priority of each admitted execution (fair dispatch); absent: plain FIFO. */
  priorities?: number[];
  /** Called once the admitted jobs are in `exec` (fair dispatch: the batch stops holding virtual time back). */
  added?: () => Promise<void>;
}

/** What the exec queue holds now, as the FIFO policy sees it. */
export interface AdmissionSnapshot {
  /** Executions waiting, delayed or running in `exec`. */
  inFlight: number;
  /** Whether runs are already waiting for admission (FIFO serves them first). */
  othersWaiting: boolean;
}

/**
 * First come, first served, under one global cap on executions in `exec`
 * (`ADMISSION_MAX_IN_FLIGHT`): the policy with FAIR_DISPATCH=false. While runs are held, new work
 * queues behind them. The cap is soft by up to one batch per coordinator: the count is read
 * before the jobs are added.
 */
export class FifoGlobalCap {
  readonly name = 'fifo-global-cap';

  constructor(private readonly maxInFlight: number) {}

  admit(requests: readonly AdmissionRequest[], snapshot: AdmissionSnapshot, releasing: boolean): number {
    if (snapshot.othersWaiting && !releasing) return 0;
    return Math.max(0, Math.min(requests.length, this.maxInFlight - snapshot.inFlight));
  }
}

/** How long a reading of the exec queue's size is reused by the FIFO policy: it must add no round trip per node. */
const SNAPSHOT_TTL_MS = 100;

/**
 * Decides which ready executions go onto `exec` now (DESIGN.md: the admission stage). The rest
 * stay in their run's outbox (durable, nothing is lost) and the run waits in its tenant's held
 * list until the sweeper, or a result of that tenant, gives it its turn (OutboxSweeper).
 *
 * Fair dispatch (the default): one atomic script per batch (DispatchStore) enforces the tenant's
 * cap and the global cap and hands out start-time fair queuing levels, which become the jobs'
 * BullMQ priorities: under contention tenants are served round robin, `weight` executions per
 * round, however their work is split over runs and workflows. A tenant with held runs queues new
 * work behind them (first come first served within a tenant).
 */
@Injectable()
export class Admission {
  readonly policy: DispatchPolicy;
  readonly store: DispatchStore;
  private readonly fifo: FifoGlobalCap;
  private readonly globalMax: number;
  private counted = { at: 0, inFlight: 0 };
  /** FIFO policy: set by the sweeper from the held lists. */
  othersWaiting = false;
  /** Fair dispatch: tenants with held runs, as last seen by the sweeper or held here since. */
  readonly heldTenants = new Set<string>();

  constructor(
    @Inject(EXEC_QUEUE) private readonly execQueue: Queue<ExecJob>,
    @Inject(REDIS) redis: RedisClient,
    @Inject(CONFIG) config: CoordinatorConfig,
    private readonly runs: RunStore,
    private readonly directory: TenantDirectory,
  ) {
    this.globalMax = config.ADMISSION_MAX_IN_FLIGHT;
    this.fifo = new FifoGlobalCap(config.ADMISSION_MAX_IN_FLIGHT);
    this.store = new DispatchStore(redis, execQueue);
    this.policy = {
      fair: config.FAIR_DISPATCH,
      defaults: { weight: config.TENANT_DEFAULT_WEIGHT, maxInFlight: config.TENANT_MAX_IN_FLIGHT },
      weights: config.TENANT_WEIGHTS,
      maxInFlight: config.TENANT_MAX_IN_FLIGHT_BY_TENANT,
    };
  }

  /** Whether new work of `tenantId` must queue behind held runs. */
  waitingBefore(tenantId: string): boolean {
    return this.policy.fair ? this.heldTenants.has(tenantId) : this.othersWaiting;
  }

  /** How many of one run's `requests`, from the front, go onto `exec` now, and their priorities. */
  async admit(requests: readonly AdmissionRequest[], releasing = false): Promise<AdmissionDecision> {
    if (requests.length === 0) return { admitted: 0 };
    if (!this.policy.fair) return { admitted: await this.admitFirstComeFirstServed(requests, releasing) };
    const tenantId = requests[0]!.job.tenantId;
    if (this.heldTenants.has(tenantId) && !releasing) {
      // Known here as held (maybe from before another coordinator released its last run): asked
      // once more, so a tenant is never held for nothing until the next sweep.
      if ((await this.runs.heldRuns(tenantId, 1)).length > 0) return { admitted: 0 };
      this.heldTenants.delete(tenantId);
    }
    // One run's executions belong to one tenant; a request of another would be admitted in its own batch.
    const sameTenant = requests.findIndex((r) => r.job.tenantId !== tenantId);
    const ofTenant = sameTenant < 0 ? requests : requests.slice(0, sameTenant);
    const dispatch = await this.dispatchFor(tenantId);
    const { admitted, start, shift, batch } = await this.store.admit(
      tenantId,
      ofTenant.map((r) => r.job.executionId),
      dispatch,
      this.globalMax,
      Date.now(),
    );
    return {
      admitted,
      priorities: Array.from({ length: admitted }, (_, i) => dispatchPriority(start, i, dispatch.weight, shift)),
      added: () => this.store.added(batch),
    };
  }

  /** A tenant's weight and cap: set on its record through the admin API, else the operator's environment, else the defaults. */
  async dispatchFor(tenantId: string): Promise<TenantDispatch> {
    const own = await this.directory.tenantSettings(tenantId);
    const dispatch = dispatchOf(this.policy, tenantId);
    return { weight: own.weight ?? dispatch.weight, maxInFlight: own.maxInFlight ?? dispatch.maxInFlight };
  }

  private async admitFirstComeFirstServed(requests: readonly AdmissionRequest[], releasing: boolean): Promise<number> {
    const now = Date.now();
    if (now - this.counted.at > SNAPSHOT_TTL_MS) {
      const counts = await this.execQueue.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'waiting-children');
      this.counted = { at: now, inFlight: Object.values(counts).reduce((sum, n) => sum + n, 0) };
    }
    const admitted = this.fifo.admit(requests, { inFlight: this.counted.inFlight, othersWaiting: this.othersWaiting }, releasing);
    this.counted.inFlight += admitted;
    return admitted;
  }
}
