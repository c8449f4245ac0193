import { Inject, Injectable } from '@nestjs/common';
import type { ExecJob } from '@podflow/protocol';
import type { Queue } from 'bullmq';
import type { CoordinatorConfig } from '../config';
import { CONFIG, EXEC_QUEUE } from '../tokens';

/** One ready execution asking to go onto `exec`. */
export interface AdmissionRequest {
  job: ExecJob;
  delayMs: number;
}

/** What the exec queue holds now, as a policy sees it. */
export interface AdmissionSnapshot {
  /** Executions waiting, delayed or running in `exec`. */
  inFlight: number;
  /** Whether runs are already waiting for admission (a FIFO policy serves them first). */
  othersWaiting: boolean;
}

/**
 * Where admission policies plug in (DESIGN.md: per-tenant weights, concurrency caps, queue
 * limits). A policy sees one run's ready executions, in the order the engine made them ready,
 * and returns how many of them, from the front, go onto `exec` now. The rest stay in the run's
 * outbox (durable, nothing is lost) and the run waits in the held list, oldest first, until the
 * coordinator asks again. Policies must be cheap: they run on every outbox flush.
 */
export interface AdmissionPolicy {
  readonly name: string;
  admit(requests: readonly AdmissionRequest[], snapshot: AdmissionSnapshot, releasing: boolean): number;
}

/**
 * The default: first come, first served, under one global cap on executions in `exec`
 * (`ADMISSION_MAX_IN_FLIGHT`). While runs are held, new work queues behind them. The cap is
 * soft by up to one batch per coordinator: the count is read before the jobs are added.
 */
export class FifoGlobalCap implements AdmissionPolicy {
  readonly name = 'fifo-global-cap';

  constructor(private readonly maxInFlight: number) {}

  admit(requests: readonly AdmissionRequest[], snapshot: AdmissionSnapshot, releasing: boolean): number {
    if (snapshot.othersWaiting && !releasing) return 0;
    return Math.max(0, Math.min(requests.length, this.maxInFlight - snapshot.inFlight));
  }
}

/** How long a reading of the exec queue's size is reused: admission must add no round trip per node. */
const SNAPSHOT_TTL_MS = 100;

/** Runs the policy with a cached view of the exec queue. */
@Injectable()
export class Admission {
  readonly policy: AdmissionPolicy;
  private counted = { at: 0, inFlight: 0 };
  /** Set by the orchestrator from the held list; read by the policy. */
  othersWaiting = false;

  constructor(
    @Inject(EXEC_QUEUE) private readonly execQueue: Queue<ExecJob>,
    @Inject(CONFIG) config: CoordinatorConfig,
  ) {
    this.policy = new FifoGlobalCap(config.ADMISSION_MAX_IN_FLIGHT);
  }

  /** How many of `requests`, from the front, may be enqueued now. */
  async admit(requests: readonly AdmissionRequest[], releasing = false): Promise<number> {
    if (requests.length === 0) return 0;
    const now = Date.now();
    if (now - this.counted.at > SNAPSHOT_TTL_MS) {
      const counts = await this.execQueue.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'waiting-children');
      this.counted = { at: now, inFlight: Object.values(counts).reduce((sum, n) => sum + n, 0) };
    }
    const admitted = this.policy.admit(requests, { inFlight: this.counted.inFlight, othersWaiting: this.othersWaiting }, releasing);
    this.counted.inFlight += admitted;
    return admitted;
  }
}
