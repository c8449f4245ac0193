#!/usr/bin/env node
// `npm run bench:k8s`: benchmarks on a real Kubernetes cluster (the local one, brought up first, or
// KUBECONFIG's). Prints a markdown table, also written to bench/results/k8s-latest.md.
// BENCH_SAMPLES (default 20): pods per figure.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { ROOT, ensureInstalledAndBuilt, gitDescribe, say } from './lib/services.mjs';
import { ADMIN_KUBECONFIG, CONTAINERD_SOCKET, KUBERNETES_VERSION, WORKER_KUBECONFIG } from '../k8s/local-cluster/lib/config.mjs';

const ms = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
const times = (v) => `${v.toFixed(1)}×`;

async function main() {
  const samples = Number(process.env.BENCH_SAMPLES ?? 20);
  if (!Number.isInteger(samples) || samples < 1) throw new Error(`BENCH_SAMPLES must be a positive whole number, got "${process.env.BENCH_SAMPLES}"`);
  ensureInstalledAndBuilt();
  const local = !process.env.KUBECONFIG;
  if (local) {
    const up = spawnSync(process.execPath, [join(ROOT, 'k8s/local-cluster/cluster.mjs'), 'up'], { stdio: 'inherit', cwd: ROOT });
    if (up.status !== 0) throw new Error('the local cluster did not come up (see above)');
    process.env.KUBECONFIG = ADMIN_KUBECONFIG;
  }
  const { runPodLifecycle, runDriverLatency } = await import('../bench/k8s-pods.mjs');
  const { log } = await import('../bench/lib.mjs');
  log(`pod lifecycle: ${samples} trivial pods, one at a time${local ? ', then as many `ctr run --rm` baselines' : ''}`);
  const pods = await runPodLifecycle({ samples, ctrArgs: local ? ['--address', CONTAINERD_SOCKET, '--namespace', 'k8s.io'] : undefined });

  log(`sandbox drivers: ${samples} no-op Python executions each, kubernetes (cold pod, warm pod) and process, interleaved`);
  const drivers = await runDriverLatency({ samples, workerKubeconfig: local ? WORKER_KUBECONFIG : undefined });

  const cell = (s) => `${ms(s.median)} / ${ms(s.p95)}`;
  const rows = [
    ['create → scheduled (nodeName set)', cell(pods.createToScheduled), '', ''],
    ['scheduled → container started', cell(pods.scheduledToStarted), '', ''],
    ['started → Succeeded (python3 -c pass, then status reported)', cell(pods.startedToSucceeded), '', ''],
    ['delete → gone (DELETED event)', cell(pods.succeededToDeleted), '', ''],
    ['create → Succeeded', cell(pods.createToSucceeded), pods.baseline ? `ctr run --rm, same image and command: ${cell(pods.baseline)}` : '–', pods.baseline ? times(pods.createToSucceeded.median / pods.baseline.median) : '–'],
    ['create → Running → Succeeded → deleted (total)', cell(pods.total), pods.baseline ? `ctr run --rm: ${cell(pods.baseline)}` : '–', pods.baseline ? times(pods.total.median / pods.baseline.median) : '–'],
  ];
  const driverRows = [
    ['create call → pod ADDED (API write)', cell(drivers.createCall)],
    ['ADDED → scheduled', cell(drivers.createdToScheduled)],
    ['scheduled → container running (sandbox, CNI, container start, as the watch sees it)', cell(drivers.scheduledToRunning)],
    ['running → answer collected (attach, request, runner, stdout)', cell(drivers.runningToAnswered)],
    ['the runner\'s own time (its durationMs: from reading the request to its answer)', cell(drivers.execution)],
    ['dispose → pod gone (DELETED event)', cell(drivers.deletion)],
    ['**per node: execute() → answer**', `${cell(drivers.answered)}`, `process driver (bubblewrap), same code: ${cell(drivers.processDriver)}`, times(drivers.answered.median / drivers.processDriver.median)],
    ['per node including deletion', cell(drivers.total), `process driver: ${cell(drivers.processDriver)}`, times(drivers.total.median / drivers.processDriver.median)],
    ['**per node, warm pod (K8S_WARM_POOL_SIZE): execute() → answer**', cell(drivers.warmPod), `process driver (warm): ${cell(drivers.processDriver)}; over it: ${ms(drivers.warmPod.median - drivers.processDriver.median)} ms; cold pod: ${cell(drivers.answered)}`, times(drivers.warmPod.median / drivers.processDriver.median)],
  ];
  const machine = `Machine: ${cpus().length} cores, Node ${process.version}; cluster: ${local ? `local, Kubernetes ${KUBERNETES_VERSION}` : process.env.KUBECONFIG}; podflow ${gitDescribe()}; ${new Date().toISOString()}`;
  const table = [
    machine,
    '',
    `Pod lifecycle, ${samples} pods one at a time after 2 warm-ups, times from the client's watch (median / p95 ms):`,
    '',
    '| phase | median / p95 ms | baseline (same run) | ratio |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    `Per-node latency of a no-op Python node through the sandbox drivers, ${samples} interleaved samples each after 2 warm-ups (median / p95 ms; queue wait is not included: it is the same BullMQ path for both drivers, see \`npm run bench\`):`,
    '',
    '| phase (kubernetes driver, cold pod) | median / p95 ms | baseline (same run) | ratio |',
    '|---|---|---|---|',
    ...driverRows.map((r) => `| ${[...r, '', ''].slice(0, 4).join(' | ')} |`),
    '',
  ].join('\n');
  process.stdout.write(`\n${table}`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'k8s-latest.md'), table);
  writeFileSync(join(ROOT, 'bench', 'results', 'k8s-latest.json'), `${JSON.stringify({ machine, pods, drivers }, null, 2)}\n`);
  say('results written to bench/results/k8s-latest.md');
}

main().then(() => process.exit(0), (error) => {
  say(`bench failed: ${error.stack ?? error.message}`);
  process.exit(1);
});
