// Where a chain's time per step goes, from timestamps that already exist. Step k (node k of the
// chain, k ≥ 1) runs from the commit that queued it to the commit that recorded it succeeded (which
// queues node k + 1), and splits into four hops:
//
//   outbox → exec        commit of node k `queued` (its event's stream id)  → exec job `timestamp`
//   exec queue           exec job `timestamp` (coordinator's addBulk)       → exec job `processedOn` (worker took it)
//   worker               exec job `processedOn`                             → its `finishedOn`
//                        (cancel check, the noop driver, adding the result message)
//   results → commit     exec job `finishedOn`                              → commit of node k `succeeded`
//                        (results queue, inbox append, lease, drain loop, record reads, engine, COMMIT_BATCH)
//
// Stream ids carry Redis's clock, job timestamps the coordinator's and worker's; all run on one
// host. Exec jobs stay in Redis after completion (removeOnComplete by age), so they can be read
// after the run; result messages are removed once handled, so the results hop is not split.
import { median } from './lib.mjs';
import { streamMs } from './runs.mjs';

export const HOPS = ['outbox → exec', 'exec queue', 'worker', 'results → commit'];

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
  const exec = new Map();
  for (const job of await completedJobs(stack.execQueue)) if (job.data?.runId === runId) exec.set(job.data.nodeId, job);
  const hops = Object.fromEntries(HOPS.map((h) => [h, []]));
  const steps = [];
  let sameMs = 0;
  for (const nodeId of order.slice(1)) {
    const q = queued.get(nodeId);
    const s = succeeded.get(nodeId);
    const x = exec.get(nodeId);
    if (q === undefined || s === undefined || !x) continue;
    const times = [q, x.timestamp, x.processedOn, x.finishedOn, s];
    if (times.some((t) => typeof t !== 'number')) continue;
    HOPS.forEach((h, i) => hops[h].push(times[i + 1] - times[i]));
    steps.push(s - q);
    if (running.get(nodeId) === s) sameMs += 1;
  }
  const mean = (values) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
  return {
    steps: steps.length,
    stepMeanMs: mean(steps),
    stepMedianMs: median(steps),
    hops: Object.fromEntries(HOPS.map((h) => [h, { meanMs: mean(hops[h]), medianMs: median(hops[h]) }])),
    /** Steps whose `running` and `succeeded` events carry the same millisecond (the start came with the result). */
    runningWithSucceeded: sameMs,
  };
}

/** One line: mean ms per hop and its share of the mean step. */
export function formatBreakdown(b) {
  if (!b || b.steps === 0) return 'no step breakdown';
  const parts = HOPS.map((h) => `${h} ${b.hops[h].meanMs.toFixed(2)} ms (${((100 * b.hops[h].meanMs) / b.stepMeanMs).toFixed(0)} %)`);
  return `per step (mean of ${b.steps}): ${b.stepMeanMs.toFixed(2)} ms = ${parts.join(' + ')}; running and succeeded in the same ms in ${b.runningWithSucceeded}/${b.steps} steps`;
}
