#!/usr/bin/env node
// `npm run bench`: builds what is missing, starts a private redis-server on a free port, runs the
// benchmarks of bench/*.mjs against it (each with its own coordinator, worker and key prefix),
// prints markdown tables and stops everything. Three sections:
//   core           latency, fan-outs on the process driver, noop fan-out vs raw BullMQ
//                  → bench/results/latest.md (and latest.json)
//   orchestration  issue 11: noop-driver fan-outs of 100 / 1,000 / 10,000 nodes and chains of 40 /
//                  1,000 nodes vs raw BullMQ, coordinator RSS with 100,000 queued nodes
//                  → bench/results/orchestration.md (and orchestration.json)
//   warm           issue 12: the process driver's warm pool on vs off (alternating rounds): no-op
//                  Python / JavaScript / TypeScript nodes end to end, a 40-node Python chain, and
//                  the idle cost of a full pool → bench/results/warm.md (and warm.json)
//   fairness       issue 13: a light tenant's node wait behind another tenant's 2,000-node flood,
//                  fair dispatch vs FAIR_DISPATCH=false, and admission's cost per node
//                  → bench/results/fairness.md (and fairness.json)
//
// Environment:
//   BENCH_ONLY              core | orchestration | warm | fairness: run one section only (default: all)
//   BENCH_SAMPLES           core: samples per latency figure (default 30)
//   BENCH_FANOUT            core: fan-out size (default 1000)
//   BENCH_WARM_SAMPLES      warm: sequential executions per language and configuration (default 20)
//   BENCH_WARM_ROUNDS       warm: rounds of pool off + pool on (default 2)
//   BENCH_WARM_POOL_SIZE    warm: SANDBOX_WARM_POOL_SIZE of the "on" configuration (default 2, the worker's default)
//   BENCH_ORCH_FANOUTS      orchestration: fan-out sizes in nodes, comma-separated, or none (default 100,1000,10000)
//   BENCH_ORCH_CHAINS       orchestration: chain lengths, comma-separated, or none (default 40,1000)
//   BENCH_ORCH_CANCELS      orchestration: sizes of the cancel case (runs of independent nodes canceled
//                           while open), comma-separated, or none (default 10000)
//   BENCH_ORCH_OVERLAPS     orchestration: fan-outs submitted together, as RUNSxNODES, comma-separated, or
//                           none (default 20x100)
//   BENCH_ORCH_REPS         orchestration: runs per size up to 1,000 nodes, median reported (default 3)
//   BENCH_ORCH_CONCURRENCY  orchestration: WORKER_CONCURRENCY of the noop worker and of raw BullMQ (default 8)
//   BENCH_ORCH_RAW_JOBS     orchestration: raw BullMQ jobs per run (default 10000)
//   BENCH_ORCH_QUEUED       orchestration: queued nodes for the RSS case, 0 skips it (default 100000)
//   BENCH_ORCH_TIMEOUT_S    orchestration: time limit of each case in seconds (default 600)
//   MAX_NODES_PER_RUN       orchestration: handed to the coordinator (default 10000); a coordinator
//                           that does not know it keeps its own limit and refuses larger workflows
//   BENCH_ORCH_CPU_PROF     orchestration: a directory; the coordinator and the worker of every fan-out
//                           and chain are CPU-profiled over its measured runs
//                           ({coordinator,worker}-<shape>-<n>.cpuprofile, a summary next to each as .txt;
//                           bench/cpu-profile.mjs summarises any profile).
//                           The figures of such a run are slowed by the profiler.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ROOT, ensureBubblewrap, ensureCCompiler, ensureInstalledAndBuilt, gitDescribe, say, startRedis } from './lib/services.mjs';

const SECTIONS = ['core', 'orchestration', 'warm', 'fairness'];

function positiveInt(name, fallback, min = 1) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be a whole number of at least ${min}, got "${raw}"`);
  return value;
}

function sizeList(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw.trim() === 'none') return [];
  const sizes = raw.split(',').map((v) => Number(v.trim()));
  if (sizes.some((v) => !Number.isInteger(v) || v < 2)) throw new Error(`${name} must be comma-separated whole numbers of at least 2 (or none), got "${raw}"`);
  return sizes;
}

/** RUNSxNODES pairs (`20x100,5x1000`), or none. */
function overlapList(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw.trim() === 'none') return [];
  return raw.split(',').map((pair) => {
    const match = /^\s*(\d+)x(\d+)\s*$/.exec(pair);
    const [runs, nodes] = match ? [Number(match[1]), Number(match[2])] : [NaN, NaN];
    if (!(runs >= 1 && nodes >= 2)) throw new Error(`${name} must be comma-separated RUNSxNODES pairs like 20x100 (runs ≥ 1, nodes ≥ 2), or none; got "${raw}"`);
    return { runs, nodes };
  });
}

function machineLine() {
  return `Machine: ${cpus().length} cores (${cpus()[0]?.model?.trim() ?? 'unknown CPU'}), Node ${process.version}, ${process.platform}; podflow ${gitDescribe()}; ${new Date().toISOString()}`;
}

function writeResults(name, table, json) {
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', `${name}.md`), table);
  writeFileSync(join(ROOT, 'bench', 'results', `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
}

const ms = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
const rate = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
const times = (v) => (v >= 10 ? `${v.toFixed(0)}×` : v >= 0.1 ? `${v.toFixed(2)}×` : `${v.toFixed(3)}×`);

/** The original benchmarks: latency, process-driver fan-outs, noop fan-out vs raw BullMQ. */
async function coreSection(redis) {
  const started = Date.now();
  const samples = positiveInt('BENCH_SAMPLES', 30);
  const fanout = positiveInt('BENCH_FANOUT', 1000);
  ensureBubblewrap();
  const { runLatency } = await import('../bench/latency.mjs');
  const { runFanout, MAX_NODES } = await import('../bench/fanout.mjs');
  const { runRawBullmq } = await import('../bench/bullmq.mjs');
  const { log } = await import('../bench/lib.mjs');

  // podflow accepts at most MAX_NODES nodes per workflow, the root included.
  const leaves = Math.min(fanout, MAX_NODES - 1);
  const nodes = leaves + 1;

  log(`1/5 latency: ${samples} samples per figure`);
  const latency = await runLatency({ redisUrl: redis.url, samples });
  log(`2/5 fan-out: ${nodes} Python nodes, process driver, worker concurrency 2`);
  const c2 = await runFanout({ redisUrl: redis.url, concurrency: 2, driver: 'process', leaves });
  log(`3/5 fan-out: ${nodes} Python nodes, process driver, worker concurrency 8`);
  const c8 = await runFanout({ redisUrl: redis.url, concurrency: 8, driver: 'process', leaves });
  log(`4/5 fan-out: ${nodes} nodes, noop driver, worker concurrency 8`);
  const noop = await runFanout({ redisUrl: redis.url, concurrency: 8, driver: 'noop', leaves });
  log(`5/5 raw BullMQ: ${nodes} no-op jobs, concurrency 8`);
  const raw = await runRawBullmq({ redisUrl: redis.url, jobs: nodes, concurrency: 8 });
  const results = { latency, c2, c8, noop, raw };

  const wallSeconds = (Date.now() - started) / 1000;
  const { python: pyNode, typescript: tsNode } = latency.nodes;
  const { python: pyBare, node: nodeBare } = latency.bare;
  const inWorker = (n) => (n.worker.n > 0 ? ` (node startedAt→finishedAt in the worker: ${ms(n.worker.median)} / ${ms(n.worker.p95)})` : '');
  const fanoutLabel = `1 root + ${leaves} leaves = ${nodes} nodes`;
  const both = (r) => {
    const committed = `${rate(r.committedPerSecond)}`;
    return Math.abs(r.committedPerSecond - r.perSecond) / r.perSecond > 0.05
      ? `${rate(r.perSecond)} (${r.nodes} in ${r.seconds.toFixed(2)} s); as stored by the coordinator: ${committed} (${r.committedSeconds.toFixed(2)} s)`
      : `${rate(r.perSecond)} (${r.nodes} in ${r.seconds.toFixed(2)} s)`;
  };
  const notes = [
    `latency: ${samples} sequential samples per figure after 3 warm-ups, one worker (concurrency 2); bare spawn = spawnSync, ${samples} samples`,
    `throughput = nodes / (run finishedAt − startedAt) from GET /v1/runs/:id; "as stored by the coordinator" = time between the run's \`running\` and terminal events in its Redis event stream (server clock), shown where it differs by more than 5 %`,
    `run finishedAt is the finish time the worker reported for the last node, not when the coordinator stored the run as finished${Math.abs(noop.committedPerSecond - noop.perSecond) / noop.perSecond > 0.05 ? '; with the noop driver the coordinator applies results behind the worker, so the two figures differ' : ''}`,
    fanout > MAX_NODES - 1
      ? `BENCH_FANOUT=${fanout} asked for 1 + ${fanout} nodes; podflow rejects workflows over ${MAX_NODES} nodes (INVALID_WORKFLOW), so the fan-out is 1 root + ${leaves} leaves`
      : `BENCH_FANOUT=${fanout}`,
    `one worker process and a fresh coordinator + QUEUE_PREFIX per fan-out configuration; raw BullMQ: one Queue + one Worker (concurrency 8, fresh prefix), ${raw.jobs} jobs with addBulk, first add → last completion`,
    latency.warnings.length > 0 ? `worker warnings: ${latency.warnings.join('; ')}` : 'process sandbox: no isolation or limit warnings from the worker (bubblewrap in use)',
    `section wall time ${wallSeconds.toFixed(0)} s`,
  ];
  const rows = [
    [`no-op Python node, process driver, POST /v1/executions?wait=true (median / p95 ms)`, `${ms(pyNode.median)} / ${ms(pyNode.p95)}${inWorker(pyNode)}`, `${latency.pythonBin} -c pass: ${ms(pyBare.median)} / ${ms(pyBare.p95)}`, times(pyNode.median / pyBare.median)],
    [`no-op TypeScript node, process driver, POST /v1/executions?wait=true (median / p95 ms)`, `${ms(tsNode.median)} / ${ms(tsNode.p95)}${inWorker(tsNode)}`, `node -e 0: ${ms(nodeBare.median)} / ${ms(nodeBare.p95)}`, times(tsNode.median / nodeBare.median)],
    [`fan-out (${fanoutLabel}), Python, process driver, worker concurrency 2 (nodes/s)`, both(c2), '–', '–'],
    [`fan-out (${fanoutLabel}), Python, process driver, worker concurrency 8 (nodes/s)`, both(c8), `concurrency 2: ${rate(c2.perSecond)}`, times(c8.perSecond / c2.perSecond)],
    [`orchestration alone: fan-out (${fanoutLabel}), SANDBOX_DRIVER=noop, concurrency 8 (nodes/s)`, `${rate(noop.perSecond)} (${noop.nodes} in ${noop.seconds.toFixed(2)} s)`, `raw BullMQ, ${raw.jobs} jobs, concurrency 8: ${rate(raw.perSecond)} jobs/s (${raw.seconds.toFixed(2)} s)`, times(noop.perSecond / raw.perSecond)],
    [`orchestration alone, as stored by the coordinator (run events running → succeeded) (nodes/s)`, `${rate(noop.committedPerSecond)} (${noop.nodes} in ${noop.committedSeconds.toFixed(2)} s)`, `raw BullMQ: ${rate(raw.perSecond)} jobs/s`, times(noop.committedPerSecond / raw.perSecond)],
    ['notes', notes.join('. '), '', ''],
  ];
  const cell = (text) => String(text).replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const machine = machineLine();
  const table = [
    machine,
    '',
    '| benchmark | value | baseline (same run) | ratio |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
    '',
  ].join('\n');
  process.stdout.write(`\n${table}`);
  writeResults('latest', table, { machine, samples, fanout, wallSeconds, ...results });
  say('results written to bench/results/latest.md (and latest.json)');
}

/** Issue 11: orchestration alone (noop driver) at several sizes, raw BullMQ, coordinator RSS. */
async function orchestrationSection(redis) {
  const { ORCHESTRATION_DEFAULTS: defaults, orchestrationTable, runOrchestration } = await import('../bench/orchestration.mjs');
  const settings = {
    fanouts: sizeList('BENCH_ORCH_FANOUTS', defaults.fanouts),
    chains: sizeList('BENCH_ORCH_CHAINS', defaults.chains),
    cancels: sizeList('BENCH_ORCH_CANCELS', defaults.cancels),
    overlaps: overlapList('BENCH_ORCH_OVERLAPS', defaults.overlaps),
    reps: positiveInt('BENCH_ORCH_REPS', defaults.reps),
    concurrency: positiveInt('BENCH_ORCH_CONCURRENCY', defaults.concurrency),
    rawJobs: positiveInt('BENCH_ORCH_RAW_JOBS', defaults.rawJobs),
    queuedNodes: positiveInt('BENCH_ORCH_QUEUED', defaults.queuedNodes, 0),
    timeoutMs: positiveInt('BENCH_ORCH_TIMEOUT_S', defaults.timeoutMs / 1000) * 1000,
    maxNodesPerRun: positiveInt('MAX_NODES_PER_RUN', defaults.maxNodesPerRun),
    cpuProfDir: process.env.BENCH_ORCH_CPU_PROF ? resolve(process.env.BENCH_ORCH_CPU_PROF) : undefined,
  };
  if (settings.cpuProfDir) mkdirSync(settings.cpuProfDir, { recursive: true });
  // Other work on the machine skews every figure here: the load is printed next to them.
  const loadBefore = loadavg()[0];
  const results = await runOrchestration({ redisUrl: redis.url, settings });
  results.loadAverage = { before: loadBefore, after: loadavg()[0] };
  const machine = machineLine();
  const table = orchestrationTable(results, machine);
  process.stdout.write(`\n${table}`);
  writeResults('orchestration', table, { machine, ...results });
  say('results written to bench/results/orchestration.md (and orchestration.json)');
}

/** Issue 12: the process driver's warm pool, on vs off in alternating rounds. */
async function warmSection(redis) {
  ensureBubblewrap();
  const { SPACED_PAUSE_MS, runWarmPool } = await import('../bench/warm.mjs');
  const started = Date.now();
  const results = await runWarmPool({
    redisUrl: redis.url,
    samples: positiveInt('BENCH_WARM_SAMPLES', 20),
    rounds: positiveInt('BENCH_WARM_ROUNDS', 2),
    poolSize: positiveInt('BENCH_WARM_POOL_SIZE', 2),
  });
  const { off, on } = results;
  const cpuRow = (cpu) => `${cpu.machine.toFixed(1)} (${cpu.coordinator.toFixed(1)} / ${cpu.worker.toFixed(1)} / ${cpu.workerChildren.toFixed(1)})`;
  const lines = [
    machineLine(),
    '',
    `| figure | pool off (SANDBOX_WARM_POOL_SIZE=0) | pool on (SANDBOX_WARM_POOL_SIZE=${results.poolSize}) | on ÷ off |`,
    '|---|---|---|---|',
    ...['python', 'javascript', 'typescript'].map((language) =>
      `| no-op ${language} node, POST /v1/executions?wait=true, one at a time ${SPACED_PAUSE_MS} ms apart, median / p95 ms | ${ms(off.latency[language].median)} / ${ms(off.latency[language].p95)} | ${ms(on.latency[language].median)} / ${ms(on.latency[language].p95)} | ${times(on.latency[language].median / off.latency[language].median)} |`,
    ),
    ...['python', 'javascript', 'typescript'].map((language) =>
      `| no-op ${language} node, same, back to back (the pool refills meanwhile), median / p95 ms | ${ms(off.backToBack[language].median)} / ${ms(off.backToBack[language].p95)} | ${ms(on.backToBack[language].median)} / ${ms(on.backToBack[language].p95)} | ${times(on.backToBack[language].median / off.backToBack[language].median)} |`,
    ),
    `| chain of 40 no-op Python nodes, submit → run finished, median s | ${off.chain.median.toFixed(2)} (${off.chain.samples.map((v) => v.toFixed(2)).join(', ')}) | ${on.chain.median.toFixed(2)} (${on.chain.samples.map((v) => v.toFixed(2)).join(', ')}) | ${times(on.chain.median / off.chain.median)} |`,
    `| chain of 40: CPU per node, ms: all processes (coordinator / worker / its spawn server and what was reaped) | ${cpuRow(off.chain.cpuPerNodeMs)} | ${cpuRow(on.chain.cpuPerNodeMs)} | ${times(on.chain.cpuPerNodeMs.machine / off.chain.cpuPerNodeMs.machine)} |`,
    `| idle worker: RSS of the worker and its sandboxes, MiB (processes) | ${off.idle.rssMiB.toFixed(0)} (${off.idle.processes}) | ${on.idle.rssMiB.toFixed(0)} (${on.idle.processes}) | ${times(on.idle.rssMiB / off.idle.rssMiB)} |`,
    `| idle worker: CPU of the worker and its sandboxes over 5 s, % of one core | ${off.idle.cpuPercent.toFixed(1)} | ${on.idle.cpuPercent.toFixed(1)} | – |`,
    '',
    `- ${results.rounds} rounds, each: a fresh stack with pool off, then one with pool on; one worker (WORKER_CONCURRENCY=2), process driver, bubblewrap; ${results.samples} sequential executions per language after 3 warm-ups, once ${SPACED_PAUSE_MS} ms apart and once back to back, then ${results.chains} chains per round (1 s apart)`,
    '- CPU per node: /proc/stat of the whole machine (busy time of every core, this bench and Redis included) and /proc/<pid>/stat of the services over the chains alone, ÷ their nodes; median over the rounds. The sandboxes\' runners are reaped inside their pid namespaces, so only the machine figure holds them',
    '- medians over the rounds; the pool serves executions with the default resources, no dependencies and no egress (libs/sandbox/README.md "Warm pool"); it holds Python and Node sandboxes',
    `- section wall time ${((Date.now() - started) / 1000).toFixed(0)} s; 1-minute load average at the end ${loadavg()[0].toFixed(2)}`,
    '',
  ];
  const table = lines.join('\n');
  process.stdout.write(`\n${table}`);
  writeResults('warm', table, { machine: machineLine(), ...results });
  say('results written to bench/results/warm.md (and warm.json)');
}

/** Issue 13: fair dispatch for a light tenant behind a flood, and admission's cost per node. */
async function fairnessSection(redis) {
  const { fairnessTable, runFairness } = await import('../bench/fairness.mjs');
  const started = Date.now();
  const results = await runFairness({ redisUrl: redis.url });
  const table = `${fairnessTable(results, machineLine())}- section wall time ${((Date.now() - started) / 1000).toFixed(0)} s; 1-minute load average at the end ${loadavg()[0].toFixed(2)}\n`;
  process.stdout.write(`\n${table}`);
  writeResults('fairness', table, { machine: machineLine(), ...results });
  say('results written to bench/results/fairness.md (and fairness.json)');
}

async function main() {
  const started = Date.now();
  const only = process.env.BENCH_ONLY || undefined;
  if (only !== undefined && !SECTIONS.includes(only)) throw new Error(`BENCH_ONLY must be one of ${SECTIONS.join(', ')}, got "${only}"`);
  ensureCCompiler();
  ensureInstalledAndBuilt();
  const dataDir = mkdtempSync(join(tmpdir(), 'podflow-bench-redis-'));
  const redis = await startRedis(dataDir);
  say(`bench redis at ${redis.url.replace(/:[^:@]*@/, ':***@')}`);
  try {
    // Imported after the build: the sections load the built packages (@podflow/client, bullmq, ioredis).
    if (only === undefined || only === 'core') await coreSection(redis);
    if (only === undefined || only === 'orchestration') await orchestrationSection(redis);
    if (only === undefined || only === 'warm') await warmSection(redis);
    if (only === undefined || only === 'fairness') await fairnessSection(redis);
  } finally {
    await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  say(`done in ${((Date.now() - started) / 1000).toFixed(0)} s (build included)`);
}

main().then(
  () => process.exit(0),
  (error) => {
    say(`bench failed: ${error.stack ?? error.message}`);
    process.exit(1);
  },
);
