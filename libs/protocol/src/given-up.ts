import type { NodeError } from './errors';
import type { ExecJob, ExecResult } from './exec';
import { NO_LOGS, failedResult } from './exec-results';

/** How BullMQ ended an exec job it will not run again, for `givenUpResult`. */
export interface GivenUp {
  /** The last error: what the processor threw, or "job stalled more than allowable limit". */
  reason: string;
  attemptsMade: number;
  attemptsStarted: number;
  /** When the job was last taken (BullMQ `processedOn`). */
  startedAt?: number;
}

/**
 * The result for an execution the queue gave up on (attempts exhausted, stalled too often), so the
 * coordinator never waits for RUN_TIMEOUT. Reported by the worker that saw the job fail, and by
 * the coordinator's sweep of exec's failed jobs when that report never arrived (the worker died
 * first, or Redis refused it); either one is enough, and the second is ignored. Always
 * SANDBOX_LOST: what reaches this point is the platform failing (storage unreachable before the
 * code ran, workers dying), never the code's own failure, which the worker returns as a result;
 * the coordinator retries SANDBOX_LOST as a new attempt, within its platform retry limit.
 */
export function givenUpResult(job: ExecJob, givenUp: GivenUp, workerId: string, now: number): ExecResult {
  const error: NodeError = {
    code: 'SANDBOX_LOST',
    message:
      `the queue gave up on execution ${job.executionId} after ${givenUp.attemptsStarted} start(s) and ${givenUp.attemptsMade} failed attempt(s): ${givenUp.reason}` +
      (/stalled/.test(givenUp.reason) ? ' (its worker died or stopped renewing the job lock, more often than WORKER_LOCK_DURATION_MS and the stall limit allow)' : ''),
    nodeId: job.nodeId,
    details: { attemptsMade: givenUp.attemptsMade, attemptsStarted: givenUp.attemptsStarted, reason: givenUp.reason },
  };
  const startedAt = givenUp.startedAt ?? now;
  return failedResult(job, workerId, error, NO_LOGS, { startedAt, finishedAt: now, executionMs: 0 });
}

/** What BullMQ recorded of an exec job it failed (a bullmq `Job`, structurally), as a `GivenUp`. */
export function givenUpOf(job: { attemptsMade: number; attemptsStarted?: number; processedOn?: number }, reason: string): GivenUp {
  return {
    reason,
    attemptsMade: job.attemptsMade,
    attemptsStarted: job.attemptsStarted ?? job.attemptsMade,
    ...(job.processedOn ? { startedAt: job.processedOn } : {}),
  };
}
