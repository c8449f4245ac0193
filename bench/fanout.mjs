// Benchmarks 2 and 3: one workflow, a root node and N leaf nodes that all depend on it (fan-out).
// Throughput = nodes / (run finishedAt - run startedAt), both from GET /v1/runs/:id.
import { PYTHON_NOOP } from './latency.mjs';
import { log, withStack } from './lib.mjs';

/** podflow's DEFAULT_WORKFLOW_LIMITS.maxNodes: a definition may hold at most this many nodes. */
export const MAX_NODES = 1000;

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
    const run = await stack.client.waitForRun(id, 200, timeoutMs);
    const wallMs = Date.now() - wallStart;
    if (run.status !== 'succeeded') throw new Error(`fan-out run ${id} ended ${run.status}: ${JSON.stringify(run.error)}`);
    const nodes = Object.keys(run.nodes).length;
    const notDone = Object.entries(run.nodes).filter(([, n]) => n.status !== 'succeeded');
    if (nodes !== workflow.nodes.length || notDone.length > 0) {
      throw new Error(`fan-out run ${id}: ${nodes} nodes in the view, ${notDone.length} not succeeded (expected ${workflow.nodes.length})`);
    }
    const seconds = (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000;
    if (!(seconds > 0)) throw new Error(`fan-out run ${id}: unusable timestamps startedAt=${run.startedAt} finishedAt=${run.finishedAt}`);
    const result = { driver, concurrency, leaves, nodes, seconds, wallMs, perSecond: nodes / seconds };
    log(`fan-out ${driver} c=${concurrency}: ${nodes} nodes in ${seconds.toFixed(2)} s = ${result.perSecond.toFixed(1)} nodes/s (wall ${wallMs} ms)`);
    return result;
  });
}
