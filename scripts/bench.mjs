#!/usr/bin/env node
// `npm run bench`: builds what is missing, starts a private redis-server on a free port, runs the
// benchmarks of bench/*.mjs against it (each with its own coordinator, worker and key prefix),
// prints one markdown table (also written to bench/results/latest.md) and stops everything.
// BENCH_SAMPLES (default 30): samples per latency figure. BENCH_FANOUT (default 1000): fan-out size.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, ensureBubblewrap, ensureInstalledAndBuilt, gitDescribe, say, startRedis } from './lib/services.mjs';

function positiveInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive whole number, got "${raw}"`);
  return value;
}

const ms = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
const rate = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
const times = (v) => (v >= 10 ? `${v.toFixed(0)}×` : v >= 0.1 ? `${v.toFixed(2)}×` : `${v.toFixed(3)}×`);

async function main() {
  const started = Date.now();
  const samples = positiveInt('BENCH_SAMPLES', 30);
  const fanout = positiveInt('BENCH_FANOUT', 1000);
  ensureInstalledAndBuilt();
  ensureBubblewrap();
  // Imported after the build: they load the built packages (@podflow/client, bullmq, ioredis).
  const { runLatency } = await import('../bench/latency.mjs');
  const { runFanout, MAX_NODES } = await import('../bench/fanout.mjs');
  const { runRawBullmq } = await import('../bench/bullmq.mjs');
  const { log } = await import('../bench/lib.mjs');

  // podflow accepts at most MAX_NODES nodes per workflow, the root included.
  const leaves = Math.min(fanout, MAX_NODES - 1);
  const nodes = leaves + 1;

  const dataDir = mkdtempSync(join(tmpdir(), 'podflow-bench-redis-'));
  const redis = await startRedis(dataDir);
  say(`bench redis at ${redis.url}`);
  let results;
  try {
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
    results = { latency, c2, c8, noop, raw };
  } finally {
    await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }

  const { latency, c2, c8, noop, raw } = results;
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
    `run finishedAt is the finish time the worker reported for the last node, not when the coordinator stored the run as finished; with the noop driver the coordinator applies results far behind the worker, so the two figures differ`,
    fanout > MAX_NODES - 1
      ? `BENCH_FANOUT=${fanout} asked for 1 + ${fanout} nodes; podflow rejects workflows over ${MAX_NODES} nodes (INVALID_WORKFLOW), so the fan-out is 1 root + ${leaves} leaves`
      : `BENCH_FANOUT=${fanout}`,
    `one worker process and a fresh coordinator + QUEUE_PREFIX per fan-out configuration; raw BullMQ: one Queue + one Worker (concurrency 8, fresh prefix), ${raw.jobs} jobs with addBulk, first add → last completion`,
    latency.warnings.length > 0 ? `worker warnings: ${latency.warnings.join('; ')}` : 'process sandbox: no isolation or limit warnings from the worker (bubblewrap in use)',
    `total wall time ${wallSeconds.toFixed(0)} s (build included)`,
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
  const machine = `Machine: ${cpus().length} cores (${cpus()[0]?.model?.trim() ?? 'unknown CPU'}), Node ${process.version}, ${process.platform}; podflow ${gitDescribe()}; ${new Date().toISOString()}`;
  const table = [
    machine,
    '',
    '| benchmark | value | baseline (same run) | ratio |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
    '',
  ].join('\n');
  process.stdout.write(`\n${table}`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.md'), table);
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.json'), `${JSON.stringify({ machine, samples, fanout, wallSeconds, ...results }, null, 2)}\n`);
  say(`results written to bench/results/latest.md (and latest.json) in ${wallSeconds.toFixed(0)} s`);
}

main().then(
  () => process.exit(0),
  (error) => {
    say(`bench failed: ${error.stack ?? error.message}`);
    process.exit(1);
  },
);
