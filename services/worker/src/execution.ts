import {
  DEFAULT_OUTPUT_INLINE_MAX_BYTES,
  NO_LOGS,
  boundNodeError,
  failedResult,
  resultBase,
  PodflowError,
  unstorableFilesError,
  unstorablePathReason,
  type ExecJob,
  type ExecResult,
  type FileElement,
  type JsonObject,
  type NodeError,
  type PayloadRef,
} from '@podflow/protocol';
import type { SandboxDriver, SandboxOutcome } from '@podflow/sandbox';
import { PayloadStore, isObjectRefused, type ObjectStore } from '@podflow/storage';
import { uploadFiles } from './file-upload';
import { offloadOutput, resolveArgs } from './payloads';
import { DEFAULT_STORE_RETRY, StoreRetriesExhaustedError, withStoreRetries, type StoreRetryPolicy } from './store-retry';

export interface ExecutionDeps {
  driver: SandboxDriver;
  store: ObjectStore;
  workerId: string;
  signal: AbortSignal;
  /** Passed to the driver: the code is handed to the sandbox only once this resolves (SandboxDriver.execute). */
  handOver?: Promise<void>;
  now?: () => number;
  /** Outputs whose JSON is larger are stored and sent as `outputRef` (`OUTPUT_INLINE_MAX_BYTES`). */
  outputInlineMaxBytes?: number;
  /** How storing files and output is retried once the code has run (default `DEFAULT_STORE_RETRY`). */
  storeRetry?: StoreRetryPolicy;
  /**
   * Takes the sandbox's clean-up (unmount, delete its directory, delete its pod) off the result's
   * path: it is started when the result is ready and runs while the result is reported; the caller
   * waits for it before it shuts down. Without it the clean-up is awaited before returning.
   */
  deferCleanup?: (cleanup: Promise<void>) => void;
  /** Told about leftovers that could not be freed; they never fail the execution. */
  logger?: { warn(obj: Record<string, unknown>, msg: string): void };
  /** Told what the sandbox reported, when it ran (metrics: layer use, pod start). */
  onOutcome?: (outcome: SandboxOutcome) => void;
}

/**
 * One execution, start to result: args (loaded and verified when the job carries `argsRef`) →
 * sandbox → output, logs and files → upload and presign; an output larger than the inline size is
 * stored and sent as `outputRef`.
 *
 * Throws only before the sandbox starts (the args' storage unreachable), so that BullMQ retries the
 * job without the code having run. From the moment the code has run it always returns a result:
 * a file the store cannot hold is OUTPUT_INVALID, a store that keeps failing (after
 * `storeRetry`) is SANDBOX_LOST, which the coordinator retries as a new, visible attempt. Running
 * the code again behind the user's back, as a BullMQ retry would, never happens.
 */
export async function runExecution(job: ExecJob, deps: ExecutionDeps): Promise<ExecResult> {
  const now = deps.now ?? Date.now;
  const startedAt = now();
  const payloads = new PayloadStore(deps.store, { inlineMaxBytes: deps.outputInlineMaxBytes ?? DEFAULT_OUTPUT_INLINE_MAX_BYTES });
  const resolved = await resolveArgs(job, payloads);
  if (!resolved.ok) return failedResult(job, deps.workerId, resolved.error, NO_LOGS, { startedAt, finishedAt: now(), executionMs: 0 });
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
      ...(job.returnAny ? { returnAny: true } : {}),
      resources: job.resources,
    },
    deps.signal,
    deps.handOver,
  );
  deps.onOutcome?.(outcome);
  try {
    const stored = await storeArtifacts(job, outcome, payloads, deps);
    const times = { startedAt, finishedAt: now(), executionMs: outcome.durationMs, peakMemoryBytes: outcome.peakMemoryBytes };
    if ('error' in stored) return failedResult(job, deps.workerId, { ...stored.error, nodeId: job.nodeId }, outcome.logs, times);
    return {
      ...resultBase(job, deps.workerId, outcome.logs, times),
      status: outcome.status,
      ...stored.output,
      ...(stored.files.length > 0 ? { files: { elements: stored.files } } : {}),
      // Bounded at the source: a 3 MB exception message must not travel through the results queue.
      ...(outcome.error ? { error: boundNodeError({ ...outcome.error, nodeId: job.nodeId }) } : {}),
      // What the driver changed about the request (resources clamped to the operator's maximum).
      warnings: outcome.warnings ?? [],
    };
  } finally {
    const cleanup = outcome.dispose().catch((error: unknown) => {
      deps.logger?.warn({ executionId: job.executionId, err: error }, 'could not free the sandbox leftovers of a finished execution');
    });
    if (deps.deferCleanup) deps.deferCleanup(cleanup);
    else await cleanup;
  }
}

type Stored = { output: { output: JsonObject } | { outputRef: PayloadRef } | Record<string, never>; files: FileElement[] } | { error: NodeError };

/** Files uploaded and output offloaded, or the node error that replaces them; never throws. */
async function storeArtifacts(job: ExecJob, outcome: SandboxOutcome, payloads: PayloadStore, deps: ExecutionDeps): Promise<Stored> {
  const retry = deps.storeRetry ?? DEFAULT_STORE_RETRY;
  const collected = outcome.status === 'succeeded' ? outcome.files : [];
  // Every driver's runner applies the rule already; this catches one that did not (a tampered
  // runner, a driver without a host-side check) before any upload, with every offender named.
  const unstorable = collected.flatMap((file) => {
    const reason = unstorablePathReason(file.path);
    return reason ? [{ path: file.path, reason }] : [];
  });
  if (unstorable.length > 0) return { error: unstorableFilesError(unstorable) };
  try {
    const files = collected.length > 0 ? await uploadFiles(deps.store, job, collected, retry) : [];
    const output = outcome.output !== undefined ? await withStoreRetries(() => offloadOutput(job, outcome.output!, payloads), retry) : {};
    return { output, files };
  } catch (error) {
    return { error: storeFailure(job, error) };
  }
}

/** What a failure to store a finished execution's files or output means for the node. */
export function storeFailure(job: ExecJob, error: unknown): NodeError {
  const cause = error instanceof StoreRetriesExhaustedError ? error.cause : error;
  const detail = cause instanceof PodflowError && cause.details ? cause.details : {};
  if (isObjectRefused(cause)) {
    return {
      code: 'OUTPUT_INVALID',
      message: `the code's files could not be stored: ${(cause as Error).message}`,
      details: { ...detail, stage: 'store' },
    };
  }
  const tries = error instanceof StoreRetriesExhaustedError ? error.attempts : 1;
  return {
    code: 'SANDBOX_LOST',
    message:
      `execution ${job.executionId} ran, but its files or output could not be stored (${tries} ${tries === 1 ? 'try' : 'tries'}): ` +
      `${(cause as Error | undefined)?.message ?? String(cause)}; the object store is failing, check the worker's storage configuration and the store itself`,
    details: { stage: 'store', tries },
  };
}
