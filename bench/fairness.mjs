// Issue 13: what fair dispatch does for a light tenant behind another tenant's flood, next to the
// same with FAIR_DISPATCH=false, and what admission costs per node. Noop driver: each execution
// takes NOOP_MS in one of SLOTS worker slots (work that occupies a slot, no sandbox cost).
//
//   light tenant's wait   20 one-node runs submitted together by tenant `light`, node queued →
//                         started (the coordinator's timings), p50 / p95: on an idle system, and
//                         while tenant `bench` has a 2,000-node run queued and running
//   admission per node    a 1,000-node fan-out of instant noop nodes, nodes/s, fair vs FIFO
import { performance } from 'node:perf_hooks';
import { PodflowClient } from '@podflow/client';
import { flatWorkflow } from './orchestration.mjs';
import { API_KEY, TENANT, log, median, percentile, withStack } from './lib.mjs';
import { followRun, submit } from './runs.mjs';

const LIGHT_KEY = 'bench-light-key';
/** Bursts of the light tenant per figure (their waits pooled). */
const BURSTS = 3;
const LIGHT_TENANT = 'light';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every node's queued → started wait (ms) of a finished run. */
async function nodeWaits(client, runId) {
  const waits = [];
  let cursor;
  do {
    const page = await client.getRun(runId, { nodeLimit: 1000, ...(cursor ? { nodeCursor: cursor } : {}) });
    for (const node of Object.values(page.nodes)) {
      if (node.status !== 'succeeded') throw new Error(`run ${runId}: node ended ${node.status}`);
      waits.push(Date.parse(node.timings.startedAt) - Date.parse(node.timings.queuedAt));
    }
    cursor = page.nextNodeCursor;
  } while (cursor);
  return waits;
}

/** `count` one-node runs submitted together; their nodes' waits. */
async function lightBurst(client, count) {
  const ids = await Promise.all(Array.from({ length: count }, () => client.submitRun({ workflow: { id: 'light', nodes: [{ id: 'n', language: 'python', code: 'def main(args): return {}' }], edges: [] } }).then((r) => r.id)));
  const waits = [];
  for (const id of ids) {
    await client.waitForRun(id, 20, 300_000);
    waits.push(...(await nodeWaits(client, id)));
  }
  return waits;
}

const figures = (waits) => ({ p50: percentile(waits, 50), p95: percentile(waits, 95) });

/** One configuration: the light tenant idle, then behind a flood. */
async function lightUnderFlood(redisUrl, fair, { floodNodes, lightRuns, noopMs, slots }) {
  return withStack(
    {
      redisUrl,
      concurrency: slots,
      driver: 'noop',
      workerEnv: { NOOP_DELAY_MS: String(noopMs) },
      coordinatorEnv: { FAIR_DISPATCH: String(fair), PODFLOW_API_KEYS: `${API_KEY}=${TENANT},${LIGHT_KEY}=${LIGHT_TENANT}`, MAX_NODES_PER_RUN: String(Math.max(10_000, floodNodes)) },
    },
    async (stack) => {
      const light = new PodflowClient({ url: stack.url, apiKey: LIGHT_KEY });
      await lightBurst(light, 3); // warm-up
      const idleWaits = [];
      for (let i = 0; i < BURSTS; i++) idleWaits.push(...(await lightBurst(light, lightRuns)));
      const floodId = await submit(stack, flatWorkflow(floodNodes));
      const flood = followRun(stack, floodId, Date.now() + 600_000);
      await sleep(300); // the flood is queued and running
      // Bursts 0.5 s apart, each submitted whether the one before has finished or not: under
      // FIFO all of them queue behind the flood, under fair dispatch each interleaves with it.
      const busyWaits = (await Promise.all(Array.from({ length: BURSTS }, (_, i) => sleep(i * 500).then(() => lightBurst(light, lightRuns))))).flat();
      const { status } = await flood;
      if (status !== 'succeeded') throw new Error(`the flood run ended ${status}`);
      const idle = figures(idleWaits);
      const busy = figures(busyWaits);
      return { idle, busy };
    },
  );
}

/** Nodes per second of a fan-out of instant noop nodes (admission's own cost). */
async function fanOutRate(redisUrl, fair, nodes, reps) {
  return withStack({ redisUrl, concurrency: 8, driver: 'noop', coordinatorEnv: { FAIR_DISPATCH: String(fair) } }, async (stack) => {
    const rates = [];
    for (let i = 0; i < reps + 1; i++) {
      const started = performance.now();
      const runId = await submit(stack, flatWorkflow(nodes));
      await followRun(stack, runId, Date.now() + 300_000);
      if (i > 0) rates.push(nodes / ((performance.now() - started) / 1000)); // the first warms up
    }
    return median(rates);
  });
}

export const FAIRNESS_DEFAULTS = { floodNodes: 2000, lightRuns: 20, noopMs: 10, slots: 4, fanOutNodes: 1000, reps: 3 };

export async function runFairness({ redisUrl, ...options }) {
  const o = { ...FAIRNESS_DEFAULTS, ...options };
  const results = { options: o };
  for (const fair of [true, false]) {
    log(`fairness: light tenant behind a ${o.floodNodes}-node flood, FAIR_DISPATCH=${fair}`);
    results[fair ? 'fair' : 'fifo'] = await lightUnderFlood(redisUrl, fair, o);
  }
  results.fanOut = {};
  for (const fair of [true, false, true, false]) {
    log(`fairness: ${o.fanOutNodes}-node noop fan-out, FAIR_DISPATCH=${fair}`);
    const key = fair ? 'fair' : 'fifo';
    results.fanOut[key] = [...(results.fanOut[key] ?? []), await fanOutRate(redisUrl, fair, o.fanOutNodes, o.reps)];
  }
  return results;
}

export function fairnessTable(r, machine) {
  const ms = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
  const o = r.options;
  const fanFair = median(r.fanOut.fair);
  const fanFifo = median(r.fanOut.fifo);
  return [
    machine,
    '',
    `| figure | fair dispatch (default) | FAIR_DISPATCH=false | fair ÷ FIFO |`,
    '|---|---|---|---|',
    `| light tenant: ${BURSTS} bursts of ${o.lightRuns} one-node runs at once, node wait (queued → started) on an idle system, p50 / p95 ms | ${ms(r.fair.idle.p50)} / ${ms(r.fair.idle.p95)} | ${ms(r.fifo.idle.p50)} / ${ms(r.fifo.idle.p95)} | – |`,
    `| same, while another tenant's ${o.floodNodes}-node run is queued and running, p50 / p95 ms | ${ms(r.fair.busy.p50)} / ${ms(r.fair.busy.p95)} | ${ms(r.fifo.busy.p50)} / ${ms(r.fifo.busy.p95)} | ${(r.fair.busy.p95 / r.fifo.busy.p95).toFixed(3)}× (p95) |`,
    `| light tenant's p95 behind the flood ÷ its p95 idle | ${(r.fair.busy.p95 / r.fair.idle.p95).toFixed(2)}× | ${(r.fifo.busy.p95 / r.fifo.idle.p95).toFixed(1)}× | – |`,
    `| admission cost: ${o.fanOutNodes}-node fan-out of instant noop nodes, 8 slots, nodes/s (median of ${r.fanOut.fair.length} stacks × ${o.reps} runs) | ${fanFair.toFixed(0)} | ${fanFifo.toFixed(0)} | ${(fanFair / fanFifo).toFixed(2)}× |`,
    '',
    `- noop driver, one worker with ${o.slots} slots, each execution ${o.noopMs} ms; tenants \`${TENANT}\` (the flood) and \`${LIGHT_TENANT}\`, weight 1 each; a fresh stack per configuration`,
    `- the light tenant's burst on an idle system waits for the ${o.slots} slots too (${o.lightRuns} runs, ${o.noopMs} ms each): "idle" is that, not zero`,
    '',
  ].join('\n');
}
