// Issue 12: what the process driver's warm pool buys, measured in one run next to the pool turned
// off (SANDBOX_WARM_POOL_SIZE=0): no-op Python, JavaScript and TypeScript nodes end to end through
// `POST /v1/executions?wait=true`, a chain of 40 trivial Python nodes, and what a full, idle pool
// costs the worker (RSS of the worker and its sandboxes, CPU while idle). The two configurations
// alternate round by round, so a machine that drifts affects both alike.
import { readFileSync, readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { chainWorkflow } from './orchestration.mjs';
import { PYTHON_NOOP, TYPESCRIPT_NOOP } from './latency.mjs';
import { log, median, percentile, withStack } from './lib.mjs';
import { checkAllSucceeded, followRun, readRun, submit } from './runs.mjs';
import { cpuSecondsOf, helpersCpuSecondsOf, machineBusySeconds } from './usage.mjs';

const NOOPS = {
  python: PYTHON_NOOP,
  javascript: 'export function main() { return {}; }\n',
  typescript: TYPESCRIPT_NOOP,
};
const WARMUP = 3;
/** Between spaced requests: long enough for the pool to refill (a sandbox starts in ~60-150 ms here). */
export const SPACED_PAUSE_MS = 250;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `pid` and every process below it (sandboxes are the worker's children, their runners further down). */
function processTree(pid) {
  const children = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const tree = [];
  for (const queue = [pid]; queue.length > 0; ) {
    const next = queue.shift();
    tree.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return tree;
}

function rssMiB(pids) {
  let kib = 0;
  for (const pid of pids) {
    try {
      kib += Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // gone meanwhile
    }
  }
  return kib / 1024;
}

function cpuSeconds(pids) {
  let total = 0;
  for (const pid of pids) {
    try {
      total += cpuSecondsOf(pid);
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** One configuration's figures: sequential no-op executions per language, chains of 40, idle cost. */
async function measure(stack, { samples, chains, idleSeconds }) {
  // Let the pool fill (and everything settle) before measuring anything.
  await sleep(2_000);
  const workerPid = stack.workerPids[0];
  const idleTree = processTree(workerPid);
  const cpuBefore = cpuSeconds(idleTree);
  await sleep(idleSeconds * 1000);
  const idle = { rssMiB: rssMiB(idleTree), cpuPercent: ((cpuSeconds(idleTree) - cpuBefore) / idleSeconds) * 100, processes: idleTree.length };

  // Two ways a client sends: one request at a time with a pause (the pool has refilled: what one
  // node costs), and back to back (the pool refills while the next requests come: sustained use).
  const latency = {};
  const backToBack = {};
  for (const [language, code] of Object.entries(NOOPS)) {
    latency[language] = await sequence(stack, language, code, samples, SPACED_PAUSE_MS);
    backToBack[language] = await sequence(stack, language, code, samples, 0);
  }

  const chainSeconds = [];
  const workflow = chainWorkflow(40);
  // CPU per node over the chains only (the 1 s pauses excluded): the whole machine, and the
  // coordinator, the worker and what the worker started (its spawn server, launchers, bwrap) on their own.
  const cpu = { machine: 0, coordinator: 0, worker: 0, workerChildren: 0 };
  for (let i = 0; i < chains; i++) {
    await sleep(1_000);
    const before = { machine: machineBusySeconds(), coordinator: cpuSecondsOf(stack.coordinatorPid), worker: cpuSecondsOf(workerPid), workerChildren: helpersCpuSecondsOf(workerPid) };
    const started = performance.now();
    const runId = await submit(stack, workflow);
    await followRun(stack, runId, Date.now() + 120_000);
    chainSeconds.push((performance.now() - started) / 1000);
    const after = { machine: machineBusySeconds(), coordinator: cpuSecondsOf(stack.coordinatorPid), worker: cpuSecondsOf(workerPid), workerChildren: helpersCpuSecondsOf(workerPid) };
    for (const key of Object.keys(cpu)) cpu[key] += after[key] - before[key];
    checkAllSucceeded(runId, await readRun(stack, runId), 40);
  }
  const perNodeMs = Object.fromEntries(Object.entries(cpu).map(([key, seconds]) => [key, (seconds * 1000) / (40 * chains)]));
  return { idle, latency, backToBack, chain: { median: median(chainSeconds), samples: chainSeconds, cpuPerNodeMs: perNodeMs } };
}

/** `samples` sequential no-op executions after WARMUP, `pauseMs` apart; median and p95 ms. */
async function sequence(stack, language, code, samples, pauseMs) {
  const times = [];
  for (let i = 0; i < WARMUP + samples; i++) {
    if (pauseMs > 0) await sleep(pauseMs);
    const start = performance.now();
    const result = await stack.client.execute({ language, code });
    const ms = performance.now() - start;
    if (result.status !== 'succeeded') throw new Error(`${language} no-op node ended ${result.status}: ${JSON.stringify(result.error ?? result)}`);
    if (i >= WARMUP) times.push(ms);
  }
  return { median: median(times), p95: percentile(times, 95) };
}

/**
 * Alternates pool off / pool on for `rounds` rounds, a fresh stack each time; returns both
 * configurations' figures (medians over the rounds' samples).
 */
export async function runWarmPool({ redisUrl, samples = 20, chains = 3, rounds = 2, poolSize = 2, idleSeconds = 5 }) {
  const configs = { off: 0, on: poolSize };
  const collected = { off: [], on: [] };
  for (let round = 1; round <= rounds; round++) {
    for (const [name, size] of Object.entries(configs)) {
      log(`warm pool ${name} (SANDBOX_WARM_POOL_SIZE=${size}), round ${round}/${rounds}`);
      const figures = await withStack({ redisUrl, concurrency: 2, driver: 'process', workerEnv: { SANDBOX_WARM_POOL_SIZE: String(size) } }, (stack) =>
        measure(stack, { samples, chains, idleSeconds }),
      );
      collected[name].push(figures);
    }
  }
  const merge = (list) => ({
    idle: { rssMiB: median(list.map((f) => f.idle.rssMiB)), cpuPercent: median(list.map((f) => f.idle.cpuPercent)), processes: median(list.map((f) => f.idle.processes)) },
    latency: Object.fromEntries(
      Object.keys(NOOPS).map((language) => [language, { median: median(list.map((f) => f.latency[language].median)), p95: median(list.map((f) => f.latency[language].p95)) }]),
    ),
    backToBack: Object.fromEntries(
      Object.keys(NOOPS).map((language) => [language, { median: median(list.map((f) => f.backToBack[language].median)), p95: median(list.map((f) => f.backToBack[language].p95)) }]),
    ),
    chain: {
      median: median(list.flatMap((f) => f.chain.samples)),
      samples: list.flatMap((f) => f.chain.samples),
      cpuPerNodeMs: Object.fromEntries(Object.keys(list[0].chain.cpuPerNodeMs).map((key) => [key, median(list.map((f) => f.chain.cpuPerNodeMs[key]))])),
    },
  });
  return { poolSize, samples, chains, rounds, off: merge(collected.off), on: merge(collected.on) };
}
