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
    // Follow the run's own event stream (SSE) to its terminal event: no polling load on the coordinator.
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      for await (const event of stack.client.events(id, controller.signal)) {
        if (event.type === 'run' && ['succeeded', 'failed', 'canceled'].includes(event.status)) break;
      }
    } catch (error) {
      if (controller.signal.aborted) throw new Error(`fan-out run ${id} did not finish within ${timeoutMs} ms`);
      throw error;
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
    const wallMs = Date.now() - wallStart;
    const run = await stack.client.getRun(id);
    if (run.status !== 'succeeded') throw new Error(`fan-out run ${id} ended ${run.status}: ${JSON.stringify(run.error)}`);
    const nodes = Object.keys(run.nodes).length;
    const notDone = Object.entries(run.nodes).filter(([, n]) => n.status !== 'succeeded');
    if (nodes !== workflow.nodes.length || notDone.length > 0) {
      throw new Error(`fan-out run ${id}: ${nodes} nodes in the view, ${notDone.length} not succeeded (expected ${workflow.nodes.length})`);
    }
    const seconds = (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000;
    if (!(seconds > 0)) throw new Error(`fan-out run ${id}: unusable timestamps startedAt=${run.startedAt} finishedAt=${run.finishedAt}`);
    // When the coordinator actually stored the run as running and as finished: the Redis stream ids
    // (server clock, ms) of the first and of the terminal run event in the run's event stream.
    const committedSeconds = await committedRunSeconds(stack, id);
    const result = { driver, concurrency, leaves, nodes, seconds, wallMs, perSecond: nodes / seconds, committedSeconds, committedPerSecond: nodes / committedSeconds };
    log(`fan-out ${driver} c=${concurrency}: ${nodes} nodes in ${seconds.toFixed(2)} s = ${result.perSecond.toFixed(1)} nodes/s (as stored by the coordinator: ${committedSeconds.toFixed(2)} s = ${result.committedPerSecond.toFixed(1)} nodes/s; submit→end ${wallMs} ms)`);
    return result;
  });
}

async function committedRunSeconds(stack, runId) {
  const key = `${stack.prefix}:run:${runId}:events`;
  const entries = await stack.redis.xrange(key, '-', '+');
  const runEvents = entries
    .map(([streamId, fields]) => ({ ms: Number(streamId.split('-')[0]), event: JSON.parse(fields[1] ?? '{}') }))
    .filter((e) => e.event.type === 'run');
  const started = runEvents.find((e) => e.event.status === 'running');
  const ended = runEvents.find((e) => ['succeeded', 'failed', 'canceled'].includes(e.event.status));
  if (!started || !ended) throw new Error(`run ${runId}: no running/terminal run event in ${key}`);
  return (ended.ms - started.ms) / 1000;
}
