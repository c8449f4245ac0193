import { MAX_OUTPUT_DEPTH, PodflowError, findTooDeep, type ExecJob, type ExecResult, type JsonObject, type PayloadRef } from '@podflow/protocol';
import { PayloadStore, PayloadUnavailableError, nodePayloadKey, runOutputsKey, type ObjectStore } from '@podflow/storage';
import { isLiveRun, type EngineEvent, type NodeRecord, type RunChanges, type RunRecord } from '@podflow/workflow';

export interface RunPayloadsOptions {
  /** `OUTPUT_INLINE_MAX_BYTES`: JSON larger than this is stored and referenced. */
  inlineMaxBytes: number;
  /** `PAYLOAD_CACHE_MAX_BYTES`: parsed payloads kept in memory, least recently used evicted. */
  cacheMaxBytes: number;
}

/**
 * Keeps large payloads out of Redis while the engine stays pure and never sees a reference:
 * - node records are handed to the engine with referenced outputs loaded (`hydrateNode`), so
 *   `args`, input bindings, edge conditions and the workflow `output` read real values, and
 *   `prepareEvent` loads the output of a result that travelled by reference;
 * - after a batch, `dehydrate` offloads what is too large (new node outputs, run outputs, job
 *   args); the store writes a node with a reference without its output (run-store storedNode).
 * Keys end in the payload's sha256, so they are immutable and the LRU cache is never stale.
 * Each record is bounded on its own: run state is no longer one document rewritten whole, so
 * many small outputs no longer add up to a cost per transition.
 */
export class RunPayloads {
  private readonly payloads: PayloadStore;

  constructor(store: ObjectStore, options: RunPayloadsOptions) {
    this.payloads = new PayloadStore(store, { inlineMaxBytes: options.inlineMaxBytes, cacheMaxBytes: options.cacheMaxBytes });
  }

  /**
   * The record with its referenced output loaded (what the engine and the API read).
   * @throws PodflowError INTERNAL when the output is missing or corrupt.
   */
  async hydrateNode<T extends Pick<NodeRecord, 'output' | 'outputRef'>>(run: Pick<RunRecord, 'id'>, nodeId: string, node: T): Promise<T> {
    if (!node.outputRef || node.output !== undefined) return node;
    return { ...node, output: await this.load(node.outputRef, `output of node "${nodeId}" in run ${run.id}`) };
  }

  /** The run's outputs, loaded when kept by reference (for the API). */
  async runOutputs(run: RunRecord): Promise<JsonObject | undefined> {
    if (run.outputs !== undefined || !run.outputsRef) return run.outputs;
    return this.load(run.outputsRef, `outputs of run ${run.id}`);
  }

  /**
   * The event as the engine must see it: a result nested deeper than MAX_OUTPUT_DEPTH becomes an
   * OUTPUT_INVALID failure; a `node_finished` whose output travelled by reference gets the output
   * back (the engine validates it against the declared outputs). Only for the execution the node
   * waits for (`node`, its current record): a stale result is ignored by the engine anyway. An
   * output that was stored but is now missing or corrupt turns the result into SANDBOX_LOST,
   * which the engine retries, instead of a result that can never be applied.
   */
  async prepareEvent(run: Pick<RunRecord, 'status' | 'ending'>, node: Pick<NodeRecord, 'status' | 'executionId'> | undefined, event: EngineEvent): Promise<EngineEvent> {
    if (event.type !== 'node_finished') return event;
    const refused = tooDeep(event.result);
    if (refused) return { ...event, result: refused };
    const { result } = event;
    // A run that is not live (ended, or ending: RunRecord.ending) ignores results: nothing to load for one.
    const awaited = isLiveRun(run) && node !== undefined && (node.status === 'queued' || node.status === 'running') && node.executionId === result.executionId;
    if (!result.outputRef || result.output !== undefined || !awaited) return event;
    try {
      const loaded: ExecResult = { ...result, output: await this.payloads.load(result.outputRef) };
      return { ...event, result: tooDeep(loaded) ?? loaded };
    } catch (error) {
      if (!(error instanceof PayloadUnavailableError)) throw error;
      const { output: _output, outputRef: _ref, ...rest } = result;
      const lost: ExecResult = {
        ...rest,
        status: 'failed',
        error: {
          code: 'SANDBOX_LOST',
          message: `the output of execution ${result.executionId} was lost in storage: ${error.message}; the node is retried`,
          nodeId: result.nodeId,
          details: { key: error.ref.key, problem: error.problem },
        },
      };
      return { ...event, result: lost };
    }
  }

  /**
   * What Redis may hold of a batch: node outputs, run outputs and job args larger than the inline
   * size are stored and replaced by references. Changes the records and jobs in place (they are
   * the engine's fresh copies) and returns the changes.
   */
  async dehydrate(changes: RunChanges): Promise<RunChanges> {
    const { run } = changes;
    await Promise.all(
      [...changes.nodes].map(async ([nodeId, node]) => {
        if (node.output === undefined || node.outputRef) return;
        node.outputRef = await this.payloads.offload(node.output, (sha256) => nodePayloadKey({ tenantId: run.tenantId, runId: run.id, nodeId, attempt: node.attempts, kind: 'output', sha256 }));
        if (!node.outputRef) delete node.outputRef;
      }),
    );
    if (run.outputs !== undefined && !run.outputsRef) {
      const ref = await this.payloads.offload(run.outputs, (sha256) => runOutputsKey({ tenantId: run.tenantId, runId: run.id, sha256 }));
      if (ref) {
        run.outputsRef = ref;
        delete run.outputs;
      }
    }
    changes.commands = await Promise.all(changes.commands.map(async (command) => (command.type === 'enqueue' ? { ...command, job: await this.dehydrateJob(command.job) } : command)));
    return changes;
  }

  private async load(ref: PayloadRef, what: string): Promise<JsonObject> {
    try {
      return await this.payloads.load(ref);
    } catch (error) {
      if (!(error instanceof PayloadUnavailableError)) throw error;
      throw new PodflowError('INTERNAL', `the ${what} cannot be read: ${error.message}. Object-store lifecycle rules must keep payloads at least as long as RUN_RETENTION_SECONDS`, {
        key: error.ref.key,
        problem: error.problem,
      });
    }
  }

  private async dehydrateJob(job: ExecJob): Promise<ExecJob> {
    if (job.args === undefined || job.argsRef) return job;
    const encoded = this.payloads.encode(job.args);
    if (this.payloads.fitsInline(encoded)) return job;
    // Not cached: only the worker reads args back.
    const argsRef = await this.payloads.put(job.args, encoded, (sha256) => nodePayloadKey({ tenantId: job.tenantId, runId: job.runId, nodeId: job.nodeId, attempt: job.attempt, kind: 'args', sha256 }), false);
    const { args: _args, ...rest } = job;
    return { ...rest, argsRef };
  }
}

/**
 * The result as an OUTPUT_INVALID failure when it nests deeper than the runners allow
 * (MAX_OUTPUT_DEPTH, checked again here: the runner shares its sandbox with user code). Deeper
 * data overflows the recursive copies of a transition, and a result that throws on every
 * delivery would leave its run waiting for RUN_TIMEOUT.
 */
function tooDeep(result: ExecResult): ExecResult | undefined {
  // The output sits two levels below the result (result → output → its fields).
  const at = findTooDeep(result, MAX_OUTPUT_DEPTH + 1, 'result');
  if (at === undefined) return undefined;
  const { output: _output, outputRef: _ref, ...rest } = result;
  const what = at.startsWith('result.output') ? 'the output' : 'the result';
  return {
    ...rest,
    status: 'failed',
    error: {
      code: 'OUTPUT_INVALID',
      message: `${what} of execution ${result.executionId} nests deeper than ${MAX_OUTPUT_DEPTH} levels of objects and arrays (at ${at.slice(0, 80)}…); return flatter data`,
      nodeId: result.nodeId,
    },
  };
}
