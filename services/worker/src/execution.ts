import type { ExecJob, ExecResult } from '@podflow/protocol';
import type { SandboxDriver } from '@podflow/sandbox';
import type { ObjectStore } from '@podflow/storage';
import { uploadFiles } from './file-upload';

export interface ExecutionDeps {
  driver: SandboxDriver;
  store: ObjectStore;
  workerId: string;
  signal: AbortSignal;
  now?: () => number;
}

/**
 * One execution, start to result: sandbox → output, logs and files → upload and presign.
 * Failures of the user's code come back as a failed result; only infrastructure faults (storage
 * unreachable) throw, so that BullMQ retries the job.
 */
export async function runExecution(job: ExecJob, deps: ExecutionDeps): Promise<ExecResult> {
  const now = deps.now ?? Date.now;
  const startedAt = now();
  const outcome = await deps.driver.execute(
    {
      executionId: job.executionId,
      tenantId: job.tenantId,
      runId: job.runId,
      nodeId: job.nodeId,
      attempt: job.attempt,
      language: job.language,
      code: job.code,
      args: job.args,
      timeoutMs: job.timeoutMs,
      dependencies: job.dependencies,
      network: job.network,
      resources: job.resources,
    },
    deps.signal,
  );
  try {
    const files = outcome.status === 'succeeded' && outcome.files.length > 0 ? await uploadFiles(deps.store, job, outcome.files) : [];
    const finishedAt = now();
    return {
      executionId: job.executionId,
      tenantId: job.tenantId,
      runId: job.runId,
      nodeId: job.nodeId,
      attempt: job.attempt,
      status: outcome.status,
      ...(outcome.output !== undefined ? { output: outcome.output } : {}),
      ...(files.length > 0 ? { files: { elements: files } } : {}),
      ...(outcome.error ? { error: { ...outcome.error, nodeId: job.nodeId } } : {}),
      logs: outcome.logs,
      warnings: [],
      timings: {
        enqueuedAt: job.enqueuedAt,
        startedAt,
        finishedAt,
        queueWaitMs: Math.max(0, startedAt - job.enqueuedAt),
        executionMs: outcome.durationMs,
      },
      workerId: deps.workerId,
    };
  } finally {
    await outcome.dispose();
  }
}
