import { boundNodeError } from './error-bounds';
import type { NodeError } from './errors';
import type { CapturedLogs, ExecJob, ExecResult } from './exec';

/** When an execution ran, as its result reports it. */
export interface ExecTimes {
  startedAt: number;
  finishedAt: number;
  executionMs: number;
  peakMemoryBytes?: number;
}

/** Logs of an execution whose code never ran. */
export const NO_LOGS: CapturedLogs = { stdout: '', stderr: '', truncated: false };

/** What every result of `job` says, whatever its outcome. */
export function resultBase(job: ExecJob, workerId: string, logs: CapturedLogs, times: ExecTimes): Omit<ExecResult, 'status'> {
  return {
    executionId: job.executionId,
    tenantId: job.tenantId,
    runId: job.runId,
    nodeId: job.nodeId,
    attempt: job.attempt,
    logs,
    warnings: [],
    timings: {
      enqueuedAt: job.enqueuedAt,
      startedAt: times.startedAt,
      finishedAt: times.finishedAt,
      queueWaitMs: Math.max(0, times.startedAt - job.enqueuedAt),
      executionMs: times.executionMs,
    },
    ...(times.peakMemoryBytes !== undefined ? { peakMemoryBytes: times.peakMemoryBytes } : {}),
    workerId,
  };
}

/** A failed result of `job`, its error bounded. */
export function failedResult(job: ExecJob, workerId: string, error: NodeError, logs: CapturedLogs, times: ExecTimes): ExecResult {
  return { ...resultBase(job, workerId, logs, times), status: 'failed', error: boundNodeError(error) };
}
