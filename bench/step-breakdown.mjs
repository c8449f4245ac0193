// Where a chain's time per step goes, from timestamps that already exist. Step k (node k of the
// chain, k ≥ 1) runs from the commit that queued it to the commit that recorded it succeeded (which
// queues node k + 1), and splits into five hops:
//
//   outbox → exec        commit of node k `queued` (its event's stream id)  → exec job `timestamp`
//   exec queue           exec job `timestamp` (coordinator's addBulk)       → exec job `processedOn` (worker took it)
//   worker               exec job `processedOn`                             → `finished` result job `timestamp`
//                        (cancel check, the `started` report, the noop driver)
//   results queue        `finished` result job `timestamp`                  → its `processedOn` (coordinator took it)
//   coordinator apply    `finished` result job `processedOn`                → commit of node k `succeeded`
//                        (inbox append, lease, drain loop, record reads, engine, COMMIT_BATCH)
//
// Stream ids carry Redis's clock, job timestamps the coordinator's and worker's; all run on one
// host. Exec and result jobs stay in Redis after completion (removeOnComplete by age), so they can
// be read after the run.
import { Queue } from 'bullmq';
import { bullPrefix, median } from './lib.mjs';
import { streamMs } from './runs.mjs';

export const HOPS = ['outbox → exec', 'exec queue', 'worker', 'results queue', 'coordinator apply'];

async function completedJobs(queue) {
  const jobs = await queue.getJobs(['completed'], 0, -1);
  return jobs.filter(Boolean);
}

/**
 * Per-hop mean and median milliseconds over the steps of a finished chain run. `order` is the
 * chain's node ids in order; `nodeEvents` comes from followRun(..., { keepNodeEvents: true }).
 */
export async function chainStepBreakdown(stack, runId, order, nodeEvents) {
  const queued = new Map();
  const succeeded = new Map();
  const running = new Map();
  for (const e of nodeEvents) {
    const map = e.status === 'queued' ? queued : e.status === 'succeeded' ? succeeded : e.status === 'running' ? running : undefined;
    if (map && !map.has(e.nodeId)) map.set(e.nodeId, streamMs(e.id));
  }
  const results = new Queue('results', { connection: stack.redis, prefix: bullPrefix(stack.prefix, 'results') });
  try {
    const exec = new Map();
    for (const job of await completedJobs(stack.execQueue)) if (job.data?.runId === runId) exec.set(job.data.nodeId, job);
    const finished = new Map();
    const started = new Map();
    for (const job of await completedJobs(results)) {
      const message = job.data;
      if (message?.kind === 'finished' && message.result?.runId === runId) finished.set(message.result.nodeId, job);
      if (message?.kind === 'started' && message.runId === runId) started.set(message.nodeId, job);
    }
    const hops = Object.fromEntries(HOPS.map((h) => [h, []]));
    const steps = [];
    const startedApply = [];
    let sameMs = 0;
    for (const nodeId of order.slice(1)) {
      const q = queued.get(nodeId);
      const s = succeeded.get(nodeId);
      const x = exec.get(nodeId);
      const f = finished.get(nodeId);
      if (q === undefined || s === undefined || !x || !f) continue;
      const times = [q, x.timestamp, x.processedOn, f.timestamp, f.processedOn, s];
      if (times.some((t) => typeof t !== 'number')) continue;
      HOPS.forEach((h, i) => hops[h].push(times[i + 1] - times[i]));
      steps.push(s - q);
      const st = started.get(nodeId);
      if (st?.processedOn && running.has(nodeId)) startedApply.push(running.get(nodeId) - st.processedOn);
      if (running.get(nodeId) === s) sameMs += 1;
    }
    const mean = (values) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
    return {
      steps: steps.length,
      stepMeanMs: mean(steps),
      stepMedianMs: median(steps),
      hops: Object.fromEntries(HOPS.map((h) => [h, { meanMs: mean(hops[h]), medianMs: median(hops[h]) }])),
      /** `started` result taken by the coordinator → node `running` committed (applied off the critical path, but on the same run). */
      startedApplyMeanMs: mean(startedApply),
      /** Steps whose `running` and `succeeded` events carry the same millisecond (likely one batch). */
      runningWithSucceeded: sameMs,
    };
  } finally {
    await results.close();
  }
}

/** One line: mean ms per hop and its share of the mean step. */
export function formatBreakdown(b) {
  if (!b || b.steps === 0) return 'no step breakdown';
  const parts = HOPS.map((h) => `${h} ${b.hops[h].meanMs.toFixed(2)} ms (${((100 * b.hops[h].meanMs) / b.stepMeanMs).toFixed(0)} %)`);
  return `per step (mean of ${b.steps}): ${b.stepMeanMs.toFixed(2)} ms = ${parts.join(' + ')}; the \`started\` report applied ${b.startedApplyMeanMs.toFixed(2)} ms after the coordinator took it; running and succeeded in the same ms in ${b.runningWithSucceeded}/${b.steps} steps`;
}
