// Benchmarks 2 and 3: one workflow, a root node and N leaf nodes that all depend on it (fan-out).
// Throughput = nodes / (run finishedAt - run startedAt), both from GET /v1/runs/:id; next to it the
// time the coordinator stored the run as running and as finished (run event stream ids, runs.mjs).
import { PYTHON_NOOP } from './latency.mjs';
import { log, withStack } from './lib.mjs';
import { TimedOut, checkAllSucceeded, followRun, readRun, streamMs } from './runs.mjs';

/**
 * The coordinator's default MAX_NODES_PER_RUN (and DEFAULT_WORKFLOW_LIMITS.maxNodes): a definition
 * may hold at most this many nodes. The bench stack does not set MAX_NODES_PER_RUN, so this applies.
 */
export const MAX_NODES = 10_000;

export function fanoutWorkflow(leaves) {
  const nodes = [{ id: 'root', language: 'python', code: PYTHON_NOOP }];
  const edges = [];
  for (let i = 0; i < leaves; i++) {
    nodes.push({ id: `leaf_${i}`, language: 'python', code: PYTHON_NOOP });
    edges.push({ from: 'root', to: `leaf_${i}` });
  }
  return { id: `bench-fanout-${leaves}`, nodes, edges };
}

/** Submits the fan-out workflow and follows it to its end; returns nodes, seconds and nodes/s. */
export async function runFanout({ redisUrl, concurrency, driver, leaves, timeoutMs = 600_000 }) {
  return withStack({ redisUrl, concurrency, driver }, async (stack) => {
    const workflow = fanoutWorkflow(leaves);
    const wallStart = Date.now();
    const { id } = await stack.client.submitRun({ workflow, inputs: {} });
    // Follow the run's own event stream (SSE) to its terminal event: no polling load on the
    // coordinator, and the stream ids of its running and terminal events.
    let ids;
    try {
      ids = await followRun(stack, id, wallStart + timeoutMs);
    } catch (error) {
      if (error instanceof TimedOut) throw new Error(`fan-out run ${id} did not finish within ${timeoutMs} ms (${error.message})`);
      throw error;
    }
    const wallMs = Date.now() - wallStart;
    const view = await readRun(stack, id);
    checkAllSucceeded(id, view, workflow.nodes.length);
    const { run } = view;
    const nodes = view.nodes.length;
    const seconds = (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000;
    if (!(seconds > 0)) throw new Error(`fan-out run ${id}: unusable timestamps startedAt=${run.startedAt} finishedAt=${run.finishedAt}`);
    // When the coordinator actually stored the run as running and as finished: the Redis stream ids
    // (server clock, ms) of its running and terminal run events. 1 ms floor: ids have ms resolution.
    const committedSeconds = Math.max(streamMs(ids.terminal) - streamMs(ids.running), 1) / 1000;
    const result = { driver, concurrency, leaves, nodes, seconds, wallMs, perSecond: nodes / seconds, committedSeconds, committedPerSecond: nodes / committedSeconds };
    log(`fan-out ${driver} c=${concurrency}: ${nodes} nodes in ${seconds.toFixed(2)} s = ${result.perSecond.toFixed(1)} nodes/s (as stored by the coordinator: ${committedSeconds.toFixed(2)} s = ${result.committedPerSecond.toFixed(1)} nodes/s; submit→end ${wallMs} ms)`);
    return result;
  });
}
