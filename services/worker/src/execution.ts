import { DEFAULT_OUTPUT_INLINE_MAX_BYTES, type ExecJob, type ExecResult, type NodeError } from '@podflow/protocol';
import type { SandboxDriver } from '@podflow/sandbox';
import { PayloadStore, type ObjectStore } from '@podflow/storage';
import { uploadFiles } from './file-upload';
import { offloadOutput, resolveArgs } from './payloads';

export interface ExecutionDeps {
  driver: SandboxDriver;
  store: ObjectStore;
  workerId: string;
  signal: AbortSignal;
  now?: () => number;
  /** Outputs whose JSON is larger are stored and sent as `outputRef` (`OUTPUT_INLINE_MAX_BYTES`). */
  outputInlineMaxBytes?: number;
}

/**
 * One execution, start to result: args (loaded and verified when the job carries `argsRef`) →
 * sandbox → output, logs and files → upload and presign; an output larger than the inline size is
 * stored and sent as `outputRef`.
 * Failures of the user's code come back as a failed result; only infrastructure faults (storage
 * unreachable) throw, so that BullMQ retries the job.
 */
export async function runExecution(job: ExecJob, deps: ExecutionDeps): Promise<ExecResult> {
  const now = deps.now ?? Date.now;
  const startedAt = now();
  const payloads = new PayloadStore(deps.store, { inlineMaxBytes: deps.outputInlineMaxBytes ?? DEFAULT_OUTPUT_INLINE_MAX_BYTES });
  const resolved = await resolveArgs(job, payloads);
  if (!resolved.ok) return notStarted(job, deps.workerId, resolved.error, startedAt, now());
  const outcome = await deps.driver.execute(
    {
      executionId: job.executionId,
      tenantId: job.tenantId,
      runId: job.runId,
      nodeId: job.nodeId,
      attempt: job.attempt,
      language: job.language,
      code: job.code,
      args: resolved.args,
      timeoutMs: job.timeoutMs,
      dependencies: job.dependencies,
      network: job.network,
      resources: job.resources,
    },
    deps.signal,
  );
  try {
    const files = outcome.status === 'succeeded' && outcome.files.length > 0 ? await uploadFiles(deps.store, job, outcome.files) : [];
    const output = outcome.output !== undefined ? await offloadOutput(job, outcome.output, payloads) : {};
    const finishedAt = now();
    return {
      executionId: job.executionId,
      tenantId: job.tenantId,
      runId: job.runId,
      nodeId: job.nodeId,
      attempt: job.attempt,
      status: outcome.status,
      ...output,
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

/** The result of an execution that failed before its sandbox started (its args could not be read). */
function notStarted(job: ExecJob, workerId: string, error: NodeError, startedAt: number, finishedAt: number): ExecResult {
  return {
    executionId: job.executionId,
    tenantId: job.tenantId,
    runId: job.runId,
    nodeId: job.nodeId,
    attempt: job.attempt,
    status: 'failed',
    error,
    logs: { stdout: '', stderr: '', truncated: false },
    warnings: [],
    timings: { enqueuedAt: job.enqueuedAt, startedAt, finishedAt, queueWaitMs: Math.max(0, startedAt - job.enqueuedAt), executionMs: 0 },
    workerId,
  };
}
