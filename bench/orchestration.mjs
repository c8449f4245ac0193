// Issue 11: what orchestration alone costs. Workers run SANDBOX_DRIVER=noop (every node returns `{}`
// at once), so the figures are coordinator + queues + worker bookkeeping, next to raw BullMQ
// add → process → complete on the same Redis in the same run.
//
// A run's time is the time the coordinator recorded it: between the Redis stream ids (server clock,
// ms) of the run's `running` and terminal events, read from the `id:` lines of its server-sent
// event stream, so the figure does not depend on how run keys are laid out. The run record's
// startedAt → finishedAt is kept next to it (finishedAt is the worker's finish time of the last
// node, so it can run ahead of the coordinator).
//
// Shapes: "fan-out N" is one root and N − 1 leaves that depend on it (N nodes in all, so fan-out
// 1,000 fits the old 1,000-node limit); "chain N" is N nodes, each depending on the one before
// (N steps). The coordinator gets MAX_NODES_PER_RUN; a coordinator that refuses a workflow (HTTP
// 4xx) gets a "refused: <its message>" cell instead of a figure, one that does not finish in time a
// "timed out" cell. Every size gets a fresh stack and a warm-up run first.
//
// "R fan-outs of N at once" submits R fan-outs of N nodes together and measures from the first
// run's `running` to the last one's terminal event: what a node of a small run costs when runs
// overlap, as they do with many tenants, next to one run alone (whose time is bounded below by
// its root's step before any leaf and its completion's step after the last: latency, not cost).
//
// "cancel N" cancels a run of N independent nodes while most of them are still open (the noop
// driver made slow, CANCEL_NOOP_DELAY_MS per node): how long the cancel takes to answer, and the
// longest stall it imposes on everyone else on that Redis (a PING client, and SLOWLOG).
//
// Where the time goes, next to each figure: CPU ms per node of the coordinator, the worker and
// redis-server (usage.mjs), Redis commands per node, for chains the split of a step into queue
// hops and coordinator work (step-breakdown.mjs), and with `cpuProfDir` a CPU profile of the
// coordinator and the worker over the measured runs (cpu-profile-hook.mjs, summarised by cpu-profile.mjs).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runRawBullmq } from './bullmq.mjs';
import { formatSummary, summariseProfile } from './cpu-profile.mjs';
import { PYTHON_NOOP } from './latency.mjs';
import { log, median, startStack } from './lib.mjs';
import { Refused, TimedOut, api, checkAllSucceeded, followRun, readRun, streamMs, submit } from './runs.mjs';
import { chainStepBreakdown, formatBreakdown } from './step-breakdown.mjs';
import { commandStats, commandsPerNode, cpuOf, memoryOf, redisPid, startPingProbe } from './usage.mjs';

const PROFILE_HOOK = fileURLToPath(new URL('./cpu-profile-hook.mjs', import.meta.url));

/** Issue 11's targets, printed in the table. */
export const ORCHESTRATION_TARGETS = { nodesPerSecond: 2000, shareOfRaw: 0.25, perNodeSpread: 0.2, chainStepMs: 5 };

export const ORCHESTRATION_DEFAULTS = {
  fanouts: [100, 1000, 10_000],
  chains: [40, 1000],
  /** Sizes of the cancel case (runs of independent nodes canceled while open). */
  cancels: [10_000],
  /** Fan-outs submitted together: `runs` fan-outs of `nodes` nodes each. */
  overlaps: [{ runs: 20, nodes: 100 }],
  /** Repetitions (median) of every size up to `repeatUpTo` nodes; larger sizes run once. */
  reps: 3,
  repeatUpTo: 1000,
  /** WORKER_CONCURRENCY of the one noop worker, and the raw BullMQ worker's concurrency. */
  concurrency: 8,
  rawJobs: 10_000,
  /** Exec jobs waiting (no worker) when the coordinator's RSS is read; 0 skips that case. */
  queuedNodes: 100_000,
  /** Nodes per run of the RSS case (independent nodes, all queued at once); fits the old limit. */
  queuedRunNodes: 1000,
  timeoutMs: 600_000,
  maxNodesPerRun: 10_000,
  /** A directory: profile the coordinator's CPU over the measured runs of every shape (cpu-profile-hook.mjs). */
  cpuProfDir: undefined,
};

/**
 * Warm-up before the measured runs: WARMUP_RUNS runs of the same shape, up to WARMUP_MAX_NODES
 * nodes. A coordinator is a long-running process; one 20-node warm-up left V8's JIT cold enough
 * that a chain's first measured runs took twice as long per step as its last.
 */
const WARMUP_RUNS = 3;
const WARMUP_MAX_NODES = 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const node = (id) => ({ id, language: 'python', code: PYTHON_NOOP });

/** One root and `nodes` − 1 leaves that depend on it. */
export function fanoutWorkflow(nodes) {
  const leaves = Array.from({ length: nodes - 1 }, (_, i) => `leaf_${i}`);
  return { id: `bench-fanout-${nodes}`, nodes: [node('root'), ...leaves.map(node)], edges: leaves.map((to) => ({ from: 'root', to })) };
}

/** `nodes` nodes, each depending on the one before. */
export function chainWorkflow(nodes) {
  const ids = Array.from({ length: nodes }, (_, i) => `step_${i}`);
  return { id: `bench-chain-${nodes}`, nodes: ids.map(node), edges: ids.slice(1).map((to, i) => ({ from: ids[i], to })) };
}

/** `nodes` independent nodes: all of them are queued when the run starts. */
export function flatWorkflow(nodes) {
  return { id: `bench-flat-${nodes}`, nodes: Array.from({ length: nodes }, (_, i) => node(`n_${i}`)), edges: [] };
}

/**
 * Submits `workflow`, follows it to its end and checks that every node succeeded. With
 * `keepNodeEvents` the sample carries the run's node events (for the chain step breakdown).
 */
async function runOnce(stack, workflow, timeoutMs, { keepNodeEvents = false } = {}) {
  const started = Date.now();
  const wallStart = performance.now();
  const runId = await submit(stack, workflow);
  const ids = await followRun(stack, runId, started + timeoutMs, { keepNodeEvents });
  const wallMs = performance.now() - wallStart;
  const view = await readRun(stack, runId);
  checkAllSucceeded(runId, view, workflow.nodes.length);
  const { run, nodes } = view;
  const seconds = (streamMs(ids.terminal) - streamMs(ids.running)) / 1000;
  const recordSeconds = (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000;
  // Stream ids have ms resolution: a tiny run can record 0 ms. 1 ms is the honest floor.
  const sample = { runId, nodes: nodes.length, seconds: Math.max(seconds, 0.001), recordSeconds, wallMs };
  if (keepNodeEvents) Object.defineProperty(sample, 'nodeEvents', { value: ids.nodeEvents, enumerable: false });
  return sample;
}

function summarize(result) {
  const { samples } = result;
  if (samples.length === 0) return result;
  result.perSecond = median(samples.map((s) => s.nodes / s.seconds));
  result.msPerNode = median(samples.map((s) => (s.seconds * 1000) / s.nodes));
  result.recordPerSecond = median(samples.map((s) => s.nodes / s.recordSeconds));
  return result;
}

function firstLine(error) {
  return String(error?.message ?? error).split('\n')[0];
}

/** The coordinator's environment: MAX_NODES_PER_RUN, and the CPU profile hook when `profileFile` is set. */
function coordinatorEnv(settings, profileFile) {
  return { MAX_NODES_PER_RUN: String(settings.maxNodesPerRun), ...profileEnv(profileFile) };
}

/** The CPU profile hook (cpu-profile-hook.mjs) writing to `profileFile`, when set. */
function profileEnv(profileFile) {
  if (!profileFile) return {};
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(PROFILE_HOOK).href}`.trim(), BENCH_CPU_PROF_FILE: profileFile };
}

/** Reads and summarises the profile a service wrote on its way out; logs the top of it. */
function readProfile(file, label) {
  if (!existsSync(file)) {
    log(`${label}: no CPU profile at ${file}`);
    return undefined;
  }
  const summary = summariseProfile(JSON.parse(readFileSync(file, 'utf8')));
  const text = formatSummary(summary, 30);
  writeFileSync(file.replace(/\.cpuprofile$/, '.txt'), text);
  log(`${label}: CPU profile ${file}\n${formatSummary(summary, 12)}`);
  const top = (list) => list.slice(0, 15).map(([name, ms]) => ({ name, ms: Math.round(ms) }));
  return { file, busyMs: Math.round(summary.busyMs), idleMs: Math.round(summary.idleMs), packages: top(summary.packages), self: top(summary.self), inclusive: top(summary.inclusive) };
}

/**
 * One size of one shape on a fresh stack: a warm-up run, then `reps` measured runs. Over the
 * measured runs: CPU seconds of the coordinator, the worker and redis-server, Redis commands per
 * node, and for chains the per-step breakdown of the last run (step-breakdown.mjs).
 */
async function measureShape({ redisUrl, kind, nodes, settings }) {
  const build = kind === 'fanout' ? fanoutWorkflow : chainWorkflow;
  const reps = nodes <= settings.repeatUpTo ? settings.reps : 1;
  const result = { kind, nodes, reps, samples: [] };
  const label = `${kind} ${nodes}`;
  const profileFile = settings.cpuProfDir ? join(settings.cpuProfDir, `coordinator-${kind}-${nodes}.cpuprofile`) : undefined;
  const workerProfileFile = settings.cpuProfDir ? join(settings.cpuProfDir, `worker-${kind}-${nodes}.cpuprofile`) : undefined;
  let stack;
  let probe;
  try {
    stack = await startStack({ redisUrl, concurrency: settings.concurrency, driver: 'noop', coordinatorEnv: coordinatorEnv(settings, profileFile), workerEnv: profileEnv(workerProfileFile) });
    for (let i = 0; i < WARMUP_RUNS; i++) await runOnce(stack, build(Math.min(nodes, WARMUP_MAX_NODES)), settings.timeoutMs);
    // The bench process too: it reads every event of the run over SSE, on the same cores.
    const pids = { coordinator: stack.coordinatorPid, worker: stack.workerPids[0], redis: await redisPid(stack.redis), bench: process.pid };
    const cpuBefore = cpuOf(pids);
    const commandsBefore = await commandStats(stack.redis);
    if (profileFile) for (const pid of [stack.coordinatorPid, stack.workerPids[0]]) process.kill(pid, 'SIGWINCH');
    probe = startPingProbe(stack.redis.duplicate());
    let last;
    for (let i = 0; i < reps; i++) {
      const workflow = build(nodes);
      last = await runOnce(stack, workflow, settings.timeoutMs, { keepNodeEvents: kind === 'chain' && i === reps - 1 });
      result.samples.push(last);
      log(`${label} #${i + 1}: ${last.nodes} nodes in ${last.seconds.toFixed(3)} s as stored = ${(last.nodes / last.seconds).toFixed(0)} nodes/s, ${((last.seconds * 1000) / last.nodes).toFixed(2)} ms/node (record ${last.recordSeconds.toFixed(3)} s; submit → end ${last.wallMs.toFixed(0)} ms)`);
    }
    const cpuAfter = cpuOf(pids);
    result.ping = await probe.stop();
    const measuredNodes = nodes * reps;
    result.cpuMsPerNode = Object.fromEntries(Object.keys(pids).map((name) => [name, ((cpuAfter[name] - cpuBefore[name]) * 1000) / measuredNodes]));
    result.redis = commandsPerNode(commandsBefore, await commandStats(stack.redis), measuredNodes);
    log(`${label}: ${formatUsage(result)}`);
    if (kind === 'chain') {
      result.breakdown = await chainStepBreakdown(stack, last.runId, build(nodes).nodes.map((n) => n.id), last.nodeEvents);
      log(`${label}: ${formatBreakdown(result.breakdown)}`);
    }
  } catch (error) {
    if (error instanceof Refused) result.refused = error.message;
    else if (error instanceof TimedOut) result.timedOut = `timed out after ${(settings.timeoutMs / 1000).toFixed(0)} s (${error.message})`;
    else result.error = firstLine(error);
    const why = result.refused ? `refused: ${result.refused}` : (result.timedOut ?? `failed: ${result.error}`);
    log(`${label}: ${why}`);
    if (result.error && stack) log(`service output (last 2000 chars):\n${stack.logs().slice(-2000)}`);
  } finally {
    await probe?.stop();
    if (stack) result.warnings = stack.warnings();
    await stack?.stop();
  }
  if (profileFile) result.profile = readProfile(profileFile, `${label}, coordinator`);
  if (workerProfileFile) result.workerProfile = readProfile(workerProfileFile, `${label}, worker`);
  return summarize(result);
}

/**
 * `runs` fan-outs of `nodes` nodes submitted at once on a fresh stack (after the usual warm-up),
 * `reps` times: nodes over the time from the first `running` to the last terminal event.
 */
async function measureOverlap({ redisUrl, runs, nodes, settings }) {
  const result = { kind: 'overlap', runs, nodes: runs * nodes, runNodes: nodes, reps: settings.reps, samples: [] };
  const label = `${runs} fan-outs of ${nodes} at once`;
  let stack;
  try {
    stack = await startStack({ redisUrl, concurrency: settings.concurrency, driver: 'noop', coordinatorEnv: coordinatorEnv(settings) });
    for (let i = 0; i < WARMUP_RUNS; i++) await runOnce(stack, fanoutWorkflow(nodes), settings.timeoutMs);
    const pids = { coordinator: stack.coordinatorPid, worker: stack.workerPids[0], redis: await redisPid(stack.redis), bench: process.pid };
    const cpuBefore = cpuOf(pids);
    for (let i = 0; i < settings.reps; i++) {
      const started = Date.now();
      const workflow = fanoutWorkflow(nodes);
      const ids = await Promise.all(Array.from({ length: runs }, () => submit(stack, workflow).then((runId) => followRun(stack, runId, started + settings.timeoutMs))));
      const seconds = (Math.max(...ids.map((id) => streamMs(id.terminal))) - Math.min(...ids.map((id) => streamMs(id.running)))) / 1000;
      if (ids.some((id) => id.status !== 'succeeded')) throw new Error(`a run ended ${ids.find((id) => id.status !== 'succeeded').status}`);
      result.samples.push({ nodes: runs * nodes, seconds: Math.max(seconds, 0.001), recordSeconds: NaN });
      log(`${label} #${i + 1}: ${runs * nodes} nodes in ${seconds.toFixed(3)} s as stored = ${((runs * nodes) / seconds).toFixed(0)} nodes/s, ${((seconds * 1000) / (runs * nodes)).toFixed(2)} ms/node`);
    }
    const cpuAfter = cpuOf(pids);
    result.cpuMsPerNode = Object.fromEntries(Object.keys(pids).map((name) => [name, ((cpuAfter[name] - cpuBefore[name]) * 1000) / (runs * nodes * settings.reps)]));
  } catch (error) {
    result.error = firstLine(error);
    log(`${label}: failed: ${result.error}`);
  } finally {
    if (stack) result.warnings = stack.warnings();
    await stack?.stop();
  }
  return summarize(result);
}

/** CPU ms per node of each process and Redis commands per node, as one line. */
function formatUsage(r) {
  if (!r.cpuMsPerNode) return '';
  const cpu = Object.entries(r.cpuMsPerNode).map(([name, ms]) => `${name} ${ms.toFixed(2)}`).join(', ');
  if (!r.redis) return `CPU ms per node: ${cpu}`;
  const top = r.redis.top
    .slice(0, 6)
    .map((c) => `${c.name} ${c.calls.toFixed(1)}`)
    .join(', ');
  return `CPU ms per node: ${cpu}; Redis ${r.redis.callsPerNode.toFixed(1)} commands (${r.redis.usecPerNode.toFixed(0)} µs) per node (${top})`;
}

async function waitingExecJobs(stack) {
  const counts = await stack.execQueue.getJobCounts('waiting', 'delayed', 'prioritized', 'paused');
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/**
 * Coordinator RSS with `queuedNodes` exec jobs waiting and no worker: runs of `queuedRunNodes`
 * independent nodes are submitted one after another; RSS is read at idle, halfway and once the
 * exec queue holds them all.
 */
async function measureQueuedRss({ redisUrl, settings }) {
  const perRun = settings.queuedRunNodes;
  const runs = Math.ceil(settings.queuedNodes / perRun);
  const total = runs * perRun;
  const result = { queuedNodes: total, runs, perRun };
  let stack;
  try {
    // The tenant's in-flight cap (TENANT_MAX_IN_FLIGHT, 10,000 by default) would hold the rest back
    // from the exec queue, and this case measures the coordinator with all of them queued there.
    stack = await startStack({ redisUrl, concurrency: 1, driver: 'noop', workers: 0, coordinatorEnv: { MAX_NODES_PER_RUN: String(settings.maxNodesPerRun), TENANT_MAX_IN_FLIGHT: String(total) } });
    await sleep(3000);
    result.idle = memoryOf(stack.coordinatorPid);
    const deadline = Date.now() + settings.timeoutMs;
    const submitStart = performance.now();
    for (let i = 0; i < runs; i++) {
      if (Date.now() > deadline) throw new TimedOut(`${i} of ${runs} runs submitted`);
      await submit(stack, flatWorkflow(perRun));
      if (i + 1 === Math.ceil(runs / 2)) result.half = { queued: (i + 1) * perRun, ...memoryOf(stack.coordinatorPid) };
    }
    result.submitSeconds = (performance.now() - submitStart) / 1000;
    let waiting = await waitingExecJobs(stack);
    while (waiting < total) {
      if (Date.now() > deadline) throw new TimedOut(`${waiting} of ${total} exec jobs waiting`);
      await sleep(500);
      waiting = await waitingExecJobs(stack);
    }
    result.queuedSeconds = (performance.now() - submitStart) / 1000;
    await sleep(2000);
    result.full = { queued: waiting, ...memoryOf(stack.coordinatorPid) };
    log(`RSS: idle ${result.idle.rssMiB.toFixed(0)} MiB, ${result.half.queued} queued ${result.half.rssMiB.toFixed(0)} MiB, ${waiting} queued ${result.full.rssMiB.toFixed(0)} MiB (peak ${result.full.peakMiB.toFixed(0)} MiB); ${runs} runs submitted in ${result.submitSeconds.toFixed(1)} s`);
  } catch (error) {
    if (error instanceof Refused) result.refused = error.message;
    else if (error instanceof TimedOut) result.timedOut = `timed out after ${(settings.timeoutMs / 1000).toFixed(0)} s (${error.message})`;
    else result.error = firstLine(error);
    if (stack?.coordinatorPid) result.atEnd = memoryOf(stack.coordinatorPid);
    log(`RSS case: ${result.refused ?? result.timedOut ?? result.error}`);
  } finally {
    if (stack) result.warnings = stack.warnings();
    await stack?.stop();
  }
  return result;
}

/** The cancel case: each node takes this long on the noop driver, so most of a run are open when it is canceled. */
const CANCEL_NOOP_DELAY_MS = 50;
/** ... and it is canceled this long after it was submitted (its creation and first pages done). */
const CANCEL_AFTER_MS = 2500;
/** SLOWLOG threshold during the cancel case: commands of 1 ms or more are logged. */
const SLOWLOG_MICROS = 1000;

/**
 * Cancels `settings.reps` runs of `nodes` independent nodes on a fresh stack, each
 * CANCEL_AFTER_MS after it was submitted: the time POST /v1/runs/:id/cancel takes to answer (it
 * answers once the run's end is applied), the longest PING another client saw from the cancel to
 * the run's terminal event, and the slowest command in SLOWLOG meanwhile.
 */
async function measureCancel({ redisUrl, nodes, settings }) {
  const result = { kind: 'cancel', nodes, samples: [] };
  let stack;
  try {
    stack = await startStack({ redisUrl, concurrency: settings.concurrency, driver: 'noop', coordinatorEnv: coordinatorEnv(settings), workerEnv: { NOOP_DELAY_MS: String(CANCEL_NOOP_DELAY_MS) } });
    const [, threshold] = await stack.redis.config('GET', 'slowlog-log-slower-than');
    await stack.redis.config('SET', 'slowlog-log-slower-than', String(SLOWLOG_MICROS));
    try {
      for (let i = 0; i < settings.reps; i++) {
        const sample = await cancelOnce(stack, nodes, settings.timeoutMs);
        result.samples.push(sample);
        log(`cancel ${nodes} #${i + 1}: ${sample.canceled} nodes canceled, answered in ${sample.answeredMs.toFixed(0)} ms; longest PING ${sample.ping.longestMs.toFixed(0)} ms; slowest command ${sample.slowest ? `${sample.slowest.command} ${sample.slowest.ms.toFixed(1)} ms` : `none of ${SLOWLOG_MICROS / 1000} ms or more`}`);
      }
    } finally {
      await stack.redis.config('SET', 'slowlog-log-slower-than', threshold);
    }
  } catch (error) {
    if (error instanceof Refused) result.refused = error.message;
    else if (error instanceof TimedOut) result.timedOut = `timed out after ${(settings.timeoutMs / 1000).toFixed(0)} s (${error.message})`;
    else result.error = firstLine(error);
    log(`cancel ${nodes}: ${result.refused ?? result.timedOut ?? result.error}`);
  } finally {
    if (stack) result.warnings = stack.warnings();
    await stack?.stop();
  }
  return result;
}

async function cancelOnce(stack, nodes, timeoutMs) {
  const runId = await submit(stack, flatWorkflow(nodes));
  await sleep(CANCEL_AFTER_MS);
  await stack.redis.slowlog('RESET');
  const probe = startPingProbe(stack.redis.duplicate());
  let ping;
  try {
    const sent = performance.now();
    const response = await api(stack, 'POST', `/v1/runs/${runId}/cancel`);
    const answeredMs = performance.now() - sent;
    if (!response.ok) throw new Error(`POST /v1/runs/${runId}/cancel: HTTP ${response.status} ${(await response.text()).slice(0, 300)}`);
    const ids = await followRun(stack, runId, Date.now() + timeoutMs);
    if (ids.status !== 'canceled') throw new Error(`run ${runId} ended ${ids.status}, not canceled`);
    ping = await probe.stop();
    // [id, time, duration µs, [command, ...args], ...]
    const slow = (await stack.redis.slowlog('GET', 128)).map((entry) => ({ command: String(entry[3]?.[0] ?? '?').toLowerCase(), ms: Number(entry[2]) / 1000 }));
    const slowest = slow.sort((a, b) => b.ms - a.ms)[0];
    const { nodes: views } = await readRun(stack, runId);
    return { runId, answeredMs, ping, slowest, canceled: views.filter((node) => node.status === 'canceled').length };
  } finally {
    await probe.stop();
  }
}

/** Runs every case of issue 11 on the Redis at `redisUrl`; `settings` overrides ORCHESTRATION_DEFAULTS. */
export async function runOrchestration({ redisUrl, settings: overrides = {} }) {
  const settings = { ...ORCHESTRATION_DEFAULTS, ...overrides };
  const started = Date.now();
  const raw = { jobs: settings.rawJobs, concurrency: settings.concurrency, samples: [] };
  for (let i = 0; i < settings.reps; i++) {
    try {
      raw.samples.push(await runRawBullmq({ redisUrl, jobs: settings.rawJobs, concurrency: settings.concurrency }));
    } catch (error) {
      raw.error = firstLine(error);
      break;
    }
  }
  raw.perSecond = median(raw.samples.map((s) => s.perSecond));
  const fanouts = [];
  for (const nodes of settings.fanouts) fanouts.push(await measureShape({ redisUrl, kind: 'fanout', nodes, settings }));
  const chains = [];
  for (const nodes of settings.chains) chains.push(await measureShape({ redisUrl, kind: 'chain', nodes, settings }));
  const overlaps = [];
  for (const { runs, nodes } of settings.overlaps ?? []) overlaps.push(await measureOverlap({ redisUrl, runs, nodes, settings }));
  const cancels = [];
  for (const nodes of settings.cancels ?? []) cancels.push(await measureCancel({ redisUrl, nodes, settings }));
  const rss = settings.queuedNodes > 0 ? await measureQueuedRss({ redisUrl, settings }) : undefined;
  return { settings, raw, fanouts, chains, overlaps, cancels, rss, seconds: (Date.now() - started) / 1000 };
}

const int = (v) => Math.round(v).toLocaleString('en-US');
const fixed = (v, digits) => (Number.isFinite(v) ? v.toFixed(digits) : '–');
const pct = (v) => (Number.isFinite(v) ? `${(v * 100).toFixed(v < 0.1 ? 1 : 0)} %` : '–');
const yesNo = (ok) => (ok ? 'yes' : 'no');

function shapeRow(r, raw, base, targets) {
  const name = r.kind === 'fanout' ? `fan-out ${int(r.nodes)} (1 root + ${int(r.nodes - 1)} leaves)` : `chain ${int(r.nodes)} (${int(r.nodes)} steps)`;
  const target =
    r.kind === 'fanout'
      ? [`≥ ${int(targets.nodesPerSecond)} nodes/s`, `≥ ${pct(targets.shareOfRaw)} of raw`, ...(r === base ? [] : [`ms/node within ±${pct(targets.perNodeSpread)} of fan-out ${int(base?.nodes ?? 100)}`])]
      : [`≤ ${targets.chainStepMs} ms per step`];
  const failed = r.refused ? `refused: ${r.refused}` : (r.timedOut ?? (r.error ? `failed: ${r.error}` : undefined));
  if (failed) return [name, '–', failed, '–', '–', target.join('; '), '–', ''];
  const share = r.perSecond / raw.perSecond;
  let met;
  if (r.kind === 'fanout') {
    met = [yesNo(r.perSecond >= targets.nodesPerSecond), yesNo(share >= targets.shareOfRaw)];
    if (r !== base) {
      const spread = base?.msPerNode ? r.msPerNode / base.msPerNode - 1 : NaN;
      met.push(Number.isFinite(spread) ? `${yesNo(Math.abs(spread) <= targets.perNodeSpread)} (${spread >= 0 ? '+' : ''}${(spread * 100).toFixed(0)} %, ${spread >= 0 ? 'slower' : 'faster'})` : 'no baseline');
    }
  } else {
    met = [yesNo(r.msPerNode <= targets.chainStepMs)];
  }
  const detail = [
    `${r.samples.map((s) => `${s.seconds.toFixed(2)} s`).join(', ')}; run record startedAt→finishedAt: ${int(r.recordPerSecond)} nodes/s`,
    formatUsage(r),
    ...(r.ping ? [`longest PING of another client meanwhile ${fixed(r.ping.longestMs, 0)} ms (p99 ${fixed(r.ping.p99Ms, 1)} ms)`] : []),
    ...(r.breakdown ? [formatBreakdown(r.breakdown)] : []),
  ]
    .filter(Boolean)
    .join('; ');
  return [name, String(r.samples.length), int(r.perSecond), fixed(r.msPerNode, 2), pct(share), target.join('; '), met.join('; '), detail];
}

function overlapRow(r, raw, fanouts) {
  const name = `${int(r.runs)} fan-outs of ${int(r.runNodes)} submitted at once (${int(r.nodes)} nodes)`;
  const target = `– (ms/node next to one fan-out of ${int(r.runNodes)} alone, and of the largest)`;
  if (r.error) return [name, String(r.samples.length), `failed: ${r.error}`, '–', '–', target, '–', ''];
  const alone = fanouts.find((f) => f.nodes === r.runNodes && f.msPerNode);
  const largest = [...fanouts].filter((f) => f.msPerNode).sort((a, b) => b.nodes - a.nodes)[0];
  const vs = (f) => (f ? `${r.msPerNode / f.msPerNode - 1 >= 0 ? '+' : ''}${((r.msPerNode / f.msPerNode - 1) * 100).toFixed(0)} % vs fan-out ${int(f.nodes)} alone` : undefined);
  const detail = [`${r.samples.map((s) => `${s.seconds.toFixed(2)} s`).join(', ')} from the first run's \`running\` to the last one's terminal event`, [vs(alone), vs(largest !== alone ? largest : undefined)].filter(Boolean).join(', '), formatUsage(r)].filter(Boolean).join('; ');
  return [name, String(r.samples.length), int(r.perSecond), fixed(r.msPerNode, 2), pct(r.perSecond / raw.perSecond), target, '–', detail];
}

function cancelRow(r) {
  const name = `cancel of a run of ${int(r.nodes)} independent nodes, ${CANCEL_AFTER_MS / 1000} s after its start (nodes take ${CANCEL_NOOP_DELAY_MS} ms)`;
  const target = 'a hot run never blocks others';
  const failed = r.refused ? `refused: ${r.refused}` : (r.timedOut ?? (r.error ? `failed: ${r.error}` : undefined));
  if (failed) return [name, String(r.samples.length), failed, '–', '–', target, '–', ''];
  const longest = r.samples.map((s) => s.ping.longestMs);
  const answered = median(r.samples.map((s) => s.answeredMs));
  const slowest = r.samples.map((s) => (s.slowest ? `${s.slowest.command} ${fixed(s.slowest.ms, 1)} ms` : `none ≥ ${SLOWLOG_MICROS / 1000} ms`));
  const value = `answered in ${fixed(answered / 1000, 2)} s; longest PING ${fixed(median(longest), 0)} ms (medians)`;
  const detail = `nodes canceled ${r.samples.map((s) => int(s.canceled)).join(', ')}; answered in ${r.samples.map((s) => `${fixed(s.answeredMs / 1000, 2)} s`).join(', ')}; longest PING of another client from the cancel to the terminal event ${longest.map((ms) => `${fixed(ms, 0)} ms`).join(', ')}; slowest command (SLOWLOG) ${slowest.join(', ')}`;
  return [name, String(r.samples.length), value, '–', '–', target, '–', detail];
}

function rssRow(rss) {
  const name = `coordinator RSS, ${int(rss.queuedNodes)} queued nodes (${rss.runs} runs × ${int(rss.perRun)} independent nodes, no worker)`;
  const mib = (m) => `${fixed(m.rssMiB, 0)} MiB`;
  if (!rss.full) {
    const why = rss.refused ? `refused: ${rss.refused}` : (rss.timedOut ?? `failed: ${rss.error}`);
    const seen = [rss.idle && `idle ${mib(rss.idle)}`, rss.atEnd && `at the end ${mib(rss.atEnd)} (peak ${fixed(rss.atEnd.peakMiB, 0)} MiB)`].filter(Boolean).join(', ');
    return [name, '1', `${why}${seen ? `; ${seen}` : ''}`, '–', '–', 'bounded', '–', ''];
  }
  const perTenThousand = ((rss.full.rssMiB - rss.half.rssMiB) / (rss.full.queued - rss.half.queued)) * 10_000;
  const value = `idle ${mib(rss.idle)}; ${int(rss.half.queued)} queued: ${mib(rss.half)}; ${int(rss.full.queued)} queued: ${mib(rss.full)} (peak ${fixed(rss.full.peakMiB, 0)} MiB)`;
  const detail = `RSS change from ${int(rss.half.queued)} to ${int(rss.full.queued)} queued: ${perTenThousand >= 0 ? '+' : '−'}${fixed(Math.abs(perTenThousand), 1)} MiB per 10,000 nodes; ${int(rss.queuedNodes)} nodes queued in ${fixed(rss.queuedSeconds, 1)} s = ${int(rss.queuedNodes / rss.queuedSeconds)} nodes/s`;
  return [name, '1', value, '–', '–', 'bounded', '–', detail];
}

/** The noop worker's start-up warning: expected in every case, so not reported. */
const EXPECTED_WARNING = /SANDBOX_DRIVER=noop: code is NOT executed/;

/** Warnings the services logged, per case, other than the noop driver's (none is the expected state). */
function warningNotes({ fanouts, chains, overlaps = [], cancels = [], rss }) {
  const unexpected = (r) => (r.warnings ?? []).filter((w) => !EXPECTED_WARNING.test(w));
  const cases = [...fanouts, ...chains, ...overlaps, ...cancels].map((r) => [`${r.kind} ${int(r.nodes)}`, unexpected(r)]);
  if (rss) cases.push(['RSS case', unexpected(rss)]);
  const noisy = cases.filter(([, w]) => w.length > 0);
  if (noisy.length === 0) return ['no warnings or errors in the services\' logs (LOG_LEVEL=warn) other than the noop driver\'s start-up warning'];
  return noisy.map(([name, w]) => `${name}: the services logged ${w.length} distinct warning(s)/error(s): ${w.slice(0, 3).join(' / ').slice(0, 600)}`);
}

/** The markdown table of a runOrchestration() result, with `machine` (a line) above it. */
export function orchestrationTable(results, machine) {
  const { raw, fanouts, chains, overlaps = [], cancels = [], rss, settings } = results;
  const targets = ORCHESTRATION_TARGETS;
  const base = fanouts.find((r) => r.perSecond !== undefined);
  const rawRow = raw.samples.length
    ? [`raw BullMQ: ${int(raw.jobs)} no-op jobs, addBulk → last completion`, String(raw.samples.length), int(raw.perSecond), fixed(1000 / raw.perSecond, 3), '100 %', 'baseline', '–', raw.samples.map((s) => `${s.seconds.toFixed(2)} s`).join(', ')]
    : ['raw BullMQ', '–', `failed: ${raw.error}`, '–', '–', 'baseline', '–', ''];
  const rows = [rawRow, ...fanouts.map((r) => shapeRow(r, raw, base, targets)), ...chains.map((r) => shapeRow(r, raw, base, targets)), ...overlaps.map((r) => overlapRow(r, raw, fanouts)), ...cancels.map(cancelRow), ...(rss ? [rssRow(rss)] : [])];
  const cell = (text) => String(text).replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const notes = [
    `SANDBOX_DRIVER=noop, one worker with WORKER_CONCURRENCY=${settings.concurrency}; raw BullMQ: one Queue + one Worker, concurrency ${settings.concurrency}, same Redis, same run`,
    `nodes/s = nodes / time between the run's \`running\` and terminal events as stored by the coordinator (Redis stream ids, server clock); ms/node = its inverse (ms per step for chains); medians of the runs counted in "runs" (sizes over ${int(settings.repeatUpTo)} nodes run once)`,
    `a fresh coordinator + worker + QUEUE_PREFIX per size, warmed up with ${WARMUP_RUNS} runs of the same shape (at most ${WARMUP_MAX_NODES.toLocaleString('en-US')} nodes each); the coordinator started with MAX_NODES_PER_RUN=${settings.maxNodesPerRun}; per-case timeout ${(settings.timeoutMs / 1000).toFixed(0)} s`,
    `RSS = VmRSS (peak = VmHWM) of the coordinator process from /proc/<pid>/status; CPU ms per node = utime + stime (/proc/<pid>/stat) of each process over the measured runs ÷ their nodes (bench = this process, which follows every run's events over SSE); Redis commands per node from INFO commandstats (commands Lua scripts call included; the worker's and the bench's own commands too)`,
    'longest PING: a client of its own sends PING every millisecond during the measured runs (usage.mjs `startPingProbe`); Redis serves no one while a Lua script or a MULTI runs, so this is the longest stall one run of that size imposes on every other tenant',
    ...(cancels.length > 0 ? [`cancel: a fresh stack per size, its worker on the noop driver with NOOP_DELAY_MS=${CANCEL_NOOP_DELAY_MS}; each run is canceled ${CANCEL_AFTER_MS / 1000} s after it was submitted, when nearly all of its nodes are open; "answered in" is POST /v1/runs/:id/cancel, which answers once the run's end is applied (a page per step, FANOUT_PAGE); SLOWLOG at ${SLOWLOG_MICROS / 1000} ms from the cancel to the terminal event, the bench's own commands included`] : []),
    `chain step breakdown (last run of each chain): step-breakdown.mjs; the hops are measured between the commit that queued a node, its exec job's added, taken and finished times and the commit that recorded it succeeded`,
    ...(settings.cpuProfDir ? [`the coordinator and the worker ran under the CPU profiler (BENCH_ORCH_CPU_PROF=${settings.cpuProfDir}, sampling every 250 µs) during the measured runs: their figures are slower than without it`] : []),
    ...warningNotes(results),
    `total ${results.seconds.toFixed(0)} s${results.loadAverage ? `; 1-minute load average ${results.loadAverage.before.toFixed(2)} before, ${results.loadAverage.after.toFixed(2)} after (anything else running on the machine skews these figures)` : ''}`,
  ];
  return [
    machine,
    '',
    '| case | runs | nodes/s (median) | ms per node (chain: per step) | % of raw BullMQ | target | met | detail |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
    '',
    ...notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}
