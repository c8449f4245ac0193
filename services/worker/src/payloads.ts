import type { ExecJob, JsonObject, NodeError, PayloadRef } from '@podflow/protocol';
import { PayloadUnavailableError, nodePayloadKey, type PayloadStore } from '@podflow/storage';

/** `args` or `argsRef` of a job resolved: the args themselves, or why they cannot be had. */
export type ResolvedArgs = { ok: true; args: JsonObject } | { ok: false; error: NodeError };

/**
 * The args `main` gets: inline, or loaded from `argsRef` and checked against its sha256.
 * A payload that is missing or corrupt becomes SANDBOX_LOST (the platform lost the execution's
 * input, not the user's fault): the coordinator then retries the node with a new attempt, whose
 * args it stores afresh. Storage that cannot be reached throws, so that BullMQ retries the job.
 */
export async function resolveArgs(job: ExecJob, payloads: PayloadStore): Promise<ResolvedArgs> {
  if (!job.argsRef) return { ok: true, args: job.args ?? {} };
  try {
    return { ok: true, args: await payloads.load(job.argsRef) };
  } catch (error) {
    if (!(error instanceof PayloadUnavailableError)) throw error;
    return {
      ok: false,
      error: {
        code: 'SANDBOX_LOST',
        message: `the args of execution ${job.executionId} could not be read before running: ${error.message}; the node is retried with freshly stored args`,
        nodeId: job.nodeId,
        details: { key: error.ref.key, problem: error.problem },
      },
    };
  }
}

/**
 * The output as the result carries it: inline when its JSON fits `OUTPUT_INLINE_MAX_BYTES`,
 * otherwise stored beside the attempt's files (`<attempt>.output.<sha256>.json`) and referenced.
 */
export async function offloadOutput(job: ExecJob, output: JsonObject, payloads: PayloadStore): Promise<{ output: JsonObject } | { outputRef: PayloadRef }> {
  const ref = await payloads.offload(output, (sha256) =>
    nodePayloadKey({ tenantId: job.tenantId, runId: job.runId, nodeId: job.nodeId, attempt: job.attempt, kind: 'output', sha256 }),
  );
  return ref ? { outputRef: ref } : { output };
}
