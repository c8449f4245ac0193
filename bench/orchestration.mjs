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
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { runRawBullmq } from './bullmq.mjs';
import { PYTHON_NOOP } from './latency.mjs';
import { API_KEY, log, median, startStack } from './lib.mjs';

/** Issue 11's targets, printed in the table. */
export const ORCHESTRATION_TARGETS = { nodesPerSecond: 2000, shareOfRaw: 0.25, perNodeSpread: 0.2, chainStepMs: 5 };

export const ORCHESTRATION_DEFAULTS = {
  fanouts: [100, 1000, 10_000],
  chains: [40, 1000],
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
};

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);
const WARMUP_NODES = 20;
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

class Refused extends Error {}
class TimedOut extends Error {}

async function api(stack, method, path, body, signal) {
  return fetch(`${stack.url}${path}`, {
    method,
    signal,
    headers: { authorization: `Bearer ${API_KEY}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
}

/** POST /v1/runs; a 4xx answer is a Refused carrying the coordinator's own message. */
async function submit(stack, workflow) {
  const response = await api(stack, 'POST', '/v1/runs', { workflow, inputs: {} });
  const text = await response.text();
  if (response.ok) return JSON.parse(text).id;
  let message = `HTTP ${response.status}: ${text.slice(0, 300)}`;
  try {
    const { error } = JSON.parse(text);
    message = `${error.code}: ${error.message}`;
  } catch {
    // Not podflow's JSON error: keep the status and the start of the body.
  }
  if (response.status >= 400 && response.status < 500) throw new Refused(message);
  throw new Error(`POST /v1/runs: ${message}`);
}

const streamMs = (id) => Number(String(id).split('-')[0]);

/**
 * Follows the run's event stream to its terminal run event; returns the stream ids of the `running`
 * and terminal run events. Past `deadline` (epoch ms) a TimedOut saying how many nodes finished.
 */
async function followRun(stack, runId, deadline) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), Math.max(0, deadline - Date.now()));
  let running;
  let finishedNodes = 0;
  try {
    const response = await api(stack, 'GET', `/v1/runs/${runId}/events`, undefined, controller.signal);
    if (!response.ok) throw new Error(`GET /v1/runs/${runId}/events: HTTP ${response.status} ${await response.text()}`);
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(frame.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]));
        if (!fields.data) continue;
        if (fields.event !== 'run') {
          if (fields.data.includes('"status":"succeeded"') || fields.data.includes('"status":"failed"')) finishedNodes += 1;
          continue;
        }
        const event = JSON.parse(fields.data);
        if (event.status === 'running' && !running) running = fields.id;
        if (TERMINAL.has(event.status)) {
          if (!running) throw new Error(`run ${runId}: terminal event ${fields.id} without a running event before it`);
          return { running, terminal: fields.id, status: event.status, finishedNodes };
        }
      }
    }
    throw new Error(`run ${runId}: event stream ended before the terminal run event`);
  } catch (error) {
    if (controller.signal.aborted) throw new TimedOut(`${finishedNodes} node(s) finished`);
    throw error;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

/** GET /v1/runs/:id and every further page of its nodes (`nextNodeCursor`, where the API pages them). */
async function readRun(stack, runId) {
  const nodes = [];
  let run;
  let cursor;
  do {
    const response = await api(stack, 'GET', `/v1/runs/${runId}${cursor === undefined ? '' : `?nodeCursor=${encodeURIComponent(cursor)}`}`);
    if (!response.ok) throw new Error(`GET /v1/runs/${runId}: HTTP ${response.status} ${(await response.text()).slice(0, 300)}`);
    run = await response.json();
    nodes.push(...Object.values(run.nodes ?? {}));
    cursor = run.nextNodeCursor;
  } while (cursor !== undefined);
  return { run, nodes };
}

/** Submits `workflow`, follows it to its end and checks that every node succeeded. */
async function runOnce(stack, workflow, timeoutMs) {
  const started = Date.now();
  const wallStart = performance.now();
  const runId = await submit(stack, workflow);
  const ids = await followRun(stack, runId, started + timeoutMs);
  const wallMs = performance.now() - wallStart;
  const { run, nodes } = await readRun(stack, runId);
  const notDone = nodes.filter((n) => n.status !== 'succeeded').length;
  if (run.status !== 'succeeded' || nodes.length !== workflow.nodes.length || notDone > 0) {
    throw new Error(`run ${runId} ended ${run.status} with ${nodes.length}/${workflow.nodes.length} nodes in its view, ${notDone} not succeeded: ${JSON.stringify(run.error ?? null).slice(0, 500)}`);
  }
  const seconds = (streamMs(ids.terminal) - streamMs(ids.running)) / 1000;
  const recordSeconds = (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000;
  // Stream ids have ms resolution: a tiny run can record 0 ms. 1 ms is the honest floor.
  return { runId, nodes: nodes.length, seconds: Math.max(seconds, 0.001), recordSeconds, wallMs };
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

/** One size of one shape on a fresh stack: a warm-up run, then `reps` measured runs. */
async function measureShape({ redisUrl, kind, nodes, settings }) {
  const build = kind === 'fanout' ? fanoutWorkflow : chainWorkflow;
  const reps = nodes <= settings.repeatUpTo ? settings.reps : 1;
  const result = { kind, nodes, reps, samples: [] };
  const label = `${kind} ${nodes}`;
  let stack;
  try {
    stack = await startStack({ redisUrl, concurrency: settings.concurrency, driver: 'noop', coordinatorEnv: { MAX_NODES_PER_RUN: String(settings.maxNodesPerRun) } });
    await runOnce(stack, build(Math.min(nodes, WARMUP_NODES)), settings.timeoutMs);
    for (let i = 0; i < reps; i++) {
      const sample = await runOnce(stack, build(nodes), settings.timeoutMs);
      result.samples.push(sample);
      log(`${label} #${i + 1}: ${sample.nodes} nodes in ${sample.seconds.toFixed(3)} s as stored = ${(sample.nodes / sample.seconds).toFixed(0)} nodes/s, ${((sample.seconds * 1000) / sample.nodes).toFixed(2)} ms/node (record ${sample.recordSeconds.toFixed(3)} s; submit → end ${sample.wallMs.toFixed(0)} ms)`);
    }
  } catch (error) {
    if (error instanceof Refused) result.refused = error.message;
    else if (error instanceof TimedOut) result.timedOut = `timed out after ${(settings.timeoutMs / 1000).toFixed(0)} s (${error.message})`;
    else result.error = firstLine(error);
    const why = result.refused ? `refused: ${result.refused}` : (result.timedOut ?? `failed: ${result.error}`);
    log(`${label}: ${why}`);
    if (result.error && stack) log(`service output (last 2000 chars):\n${stack.logs().slice(-2000)}`);
  } finally {
    await stack?.stop();
  }
  return summarize(result);
}

/** VmRSS and VmHWM of `pid` in MiB. */
function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
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
    stack = await startStack({ redisUrl, concurrency: 1, driver: 'noop', workers: 0, coordinatorEnv: { MAX_NODES_PER_RUN: String(settings.maxNodesPerRun) } });
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
    await stack?.stop();
  }
  return result;
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
  const rss = settings.queuedNodes > 0 ? await measureQueuedRss({ redisUrl, settings }) : undefined;
  return { settings, raw, fanouts, chains, rss, seconds: (Date.now() - started) / 1000 };
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
      met.push(Number.isFinite(spread) ? `${yesNo(Math.abs(spread) <= targets.perNodeSpread)} (${spread >= 0 ? '+' : ''}${(spread * 100).toFixed(0)} %)` : 'no baseline');
    }
  } else {
    met = [yesNo(r.msPerNode <= targets.chainStepMs)];
  }
  const detail = `${r.samples.map((s) => `${s.seconds.toFixed(2)} s`).join(', ')}; run record startedAt→finishedAt: ${int(r.recordPerSecond)} nodes/s`;
  return [name, String(r.samples.length), int(r.perSecond), fixed(r.msPerNode, 2), pct(share), target.join('; '), met.join('; '), detail];
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

/** The markdown table of a runOrchestration() result, with `machine` (a line) above it. */
export function orchestrationTable(results, machine) {
  const { raw, fanouts, chains, rss, settings } = results;
  const targets = ORCHESTRATION_TARGETS;
  const base = fanouts.find((r) => r.perSecond !== undefined);
  const rawRow = raw.samples.length
    ? [`raw BullMQ: ${int(raw.jobs)} no-op jobs, addBulk → last completion`, String(raw.samples.length), int(raw.perSecond), fixed(1000 / raw.perSecond, 3), '100 %', 'baseline', '–', raw.samples.map((s) => `${s.seconds.toFixed(2)} s`).join(', ')]
    : ['raw BullMQ', '–', `failed: ${raw.error}`, '–', '–', 'baseline', '–', ''];
  const rows = [rawRow, ...fanouts.map((r) => shapeRow(r, raw, base, targets)), ...chains.map((r) => shapeRow(r, raw, base, targets)), ...(rss ? [rssRow(rss)] : [])];
  const cell = (text) => String(text).replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const notes = [
    `SANDBOX_DRIVER=noop, one worker with WORKER_CONCURRENCY=${settings.concurrency}; raw BullMQ: one Queue + one Worker, concurrency ${settings.concurrency}, same Redis, same run`,
    `nodes/s = nodes / time between the run's \`running\` and terminal events as stored by the coordinator (Redis stream ids, server clock); ms/node = its inverse (ms per step for chains); medians of the runs counted in "runs" (sizes over ${int(settings.repeatUpTo)} nodes run once)`,
    `a fresh coordinator + worker + QUEUE_PREFIX per size, warmed up with a ${WARMUP_NODES}-node run of the same shape; the coordinator started with MAX_NODES_PER_RUN=${settings.maxNodesPerRun}; per-case timeout ${(settings.timeoutMs / 1000).toFixed(0)} s`,
    `RSS = VmRSS (peak = VmHWM) of the coordinator process from /proc/<pid>/status`,
    `total ${results.seconds.toFixed(0)} s`,
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
