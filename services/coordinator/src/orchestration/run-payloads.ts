import { MAX_OUTPUT_DEPTH, PodflowError, findTooDeep, ownValue, recordOf, type ExecJob, type ExecResult, type JsonObject } from '@podflow/protocol';
import { PayloadStore, PayloadUnavailableError, nodePayloadKey, runOutputsKey, type ObjectStore } from '@podflow/storage';
import type { EngineCommand, EngineEvent, NodeState, RunState } from '@podflow/workflow';

/**
 * The inline outputs of one run together stay under this many times the inline size: many
 * outputs just under the limit would otherwise add up to a run state of megabytes, rewritten on
 * every transition. Past it, the largest inline outputs are offloaded first.
 */
export const RUN_INLINE_BUDGET_FACTOR = 4;

export interface RunPayloadsOptions {
  /** `OUTPUT_INLINE_MAX_BYTES`: JSON larger than this is stored and referenced. */
  inlineMaxBytes: number;
  /** `PAYLOAD_CACHE_MAX_BYTES`: parsed payloads kept in memory, least recently used evicted. */
  cacheMaxBytes: number;
}

/**
 * Keeps large payloads out of Redis while the engine stays pure and never sees a reference:
 * - before a transition, `hydrate` and `prepareEvent` put referenced outputs back in place, so
 *   `args`, input bindings, edge conditions and the workflow `output` read real values;
 * - after it, `dehydrate` offloads what is too large (new node outputs, run outputs, job args)
 *   and strips the values whose reference is kept, before the state and its outbox are written;
 * - `hydrateForView` fills in node and run outputs for the API.
 * Keys end in the payload's sha256, so they are immutable and the LRU cache is never stale.
 */
export class RunPayloads {
  private readonly payloads: PayloadStore;
  private readonly runBudgetBytes: number;

  constructor(store: ObjectStore, options: RunPayloadsOptions) {
    this.payloads = new PayloadStore(store, { inlineMaxBytes: options.inlineMaxBytes, cacheMaxBytes: options.cacheMaxBytes });
    this.runBudgetBytes = options.inlineMaxBytes * RUN_INLINE_BUDGET_FACTOR;
  }

  /**
   * The state with every referenced node output loaded: what the engine reads. `state` itself is
   * not changed. `node_started` needs none of it (it only moves a node to running).
   * @throws PodflowError INTERNAL when an output is missing or corrupt; the event is redelivered.
   */
  async hydrate(state: RunState, event?: EngineEvent): Promise<RunState> {
    if (event?.type === 'node_started') return state;
    return { ...state, nodes: await this.loadNodeOutputs(state) };
  }

  /** Node outputs and run outputs, for `GET /v1/runs/:id` and `POST /v1/executions?wait=true`. */
  async hydrateForView(state: RunState): Promise<RunState> {
    const [nodes, outputs] = await Promise.all([
      this.loadNodeOutputs(state),
      state.outputsRef && state.outputs === undefined ? this.load(state.outputsRef, `outputs of run ${state.id}`) : Promise.resolve(state.outputs),
    ]);
    return { ...state, nodes, ...(outputs !== undefined ? { outputs } : {}) };
  }

  /**
   * The event as the engine must see it: a result nested deeper than MAX_OUTPUT_DEPTH becomes an
   * OUTPUT_INVALID failure; a `node_finished` whose output travelled by reference gets the output
   * back (the engine validates it against the declared outputs). Only for the
   * execution the node waits for: a stale result is ignored by the engine anyway. An output that
   * was stored but is now missing or corrupt turns the result into SANDBOX_LOST, which the engine
   * retries, instead of a result that can never be applied.
   */
  async prepareEvent(state: RunState, event: EngineEvent): Promise<EngineEvent> {
    if (event.type !== 'node_finished') return event;
    const refused = tooDeep(event.result);
    if (refused) return { ...event, result: refused };
    const { result } = event;
    if (!result.outputRef || result.output !== undefined || !isAwaited(state, result)) return event;
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
   * What Redis may hold of a transition's result: node outputs, run outputs and job args larger
   * than the inline size are stored and replaced by references. Changes `state` and the commands'
   * jobs in place (both are the engine's fresh copies) and returns them.
   */
  async dehydrate(state: RunState, commands: EngineCommand[]): Promise<{ state: RunState; commands: EngineCommand[] }> {
    await this.dehydrateNodeOutputs(state);
    await this.dehydrateRunOutputs(state);
    const dehydrated = await Promise.all(
      commands.map(async (command) => (command.type === 'enqueue' ? { ...command, job: await this.dehydrateJob(command.job) } : command)),
    );
    return { state, commands: dehydrated };
  }

  private async loadNodeOutputs(state: RunState): Promise<Record<string, NodeState>> {
    // A prototype-free copy, node ids being user keys (`__proto__` must stay a node).
    return recordOf(
      await Promise.all(
        Object.entries(state.nodes).map(async ([id, node]): Promise<[string, NodeState]> => {
          if (node.outputRef && node.output === undefined) return [id, { ...node, output: await this.load(node.outputRef, `output of node "${id}" in run ${state.id}`) }];
          return [id, node];
        }),
      ),
    );
  }

  private async load(ref: NonNullable<NodeState['outputRef']>, what: string): Promise<JsonObject> {
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

  private async dehydrateNodeOutputs(state: RunState): Promise<void> {
    const inline: Array<{ id: string; node: NodeState; encoded: Buffer }> = [];
    for (const [id, node] of Object.entries(state.nodes)) {
      if (node.output === undefined) continue;
      if (node.outputRef) {
        delete node.output;
        continue;
      }
      inline.push({ id, node, encoded: this.payloads.encode(node.output) });
    }
    // Largest first: every output over the inline size, then more until the run fits its budget.
    inline.sort((a, b) => b.encoded.length - a.encoded.length);
    let total = inline.reduce((sum, entry) => sum + entry.encoded.length, 0);
    for (const { id, node, encoded } of inline) {
      if (this.payloads.fitsInline(encoded) && total <= this.runBudgetBytes) break;
      const attempt = node.attempts;
      node.outputRef = await this.payloads.put(node.output!, encoded, (sha256) =>
        nodePayloadKey({ tenantId: state.tenantId, runId: state.id, nodeId: id, attempt, kind: 'output', sha256 }),
      );
      delete node.output;
      total -= encoded.length;
    }
  }

  private async dehydrateRunOutputs(state: RunState): Promise<void> {
    if (state.outputs === undefined) return;
    if (!state.outputsRef) {
      state.outputsRef = await this.payloads.offload(state.outputs, (sha256) => runOutputsKey({ tenantId: state.tenantId, runId: state.id, sha256 }));
      if (!state.outputsRef) delete state.outputsRef;
    }
    if (state.outputsRef) delete state.outputs;
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

function isAwaited(state: RunState, result: ExecResult): boolean {
  const node = ownValue(state.nodes, result.nodeId);
  return state.status === 'running' && node !== undefined && (node.status === 'queued' || node.status === 'running') && node.executionId === result.executionId;
}
