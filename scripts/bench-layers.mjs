#!/usr/bin/env node
// `npm run bench:layers`: per-node latency without dependencies, with a warm layer and with a cold
// layer, for one Python and one TypeScript package set, on the process driver and on a real
// cluster (the local one, brought up first, or KUBECONFIG's), in one run. Needs the package
// registries. Prints a markdown table, also written to bench/results/layers-latest.md.
// BENCH_SAMPLES (default 10) no-deps and warm samples, BENCH_COLD_SAMPLES (default 5) cold ones.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, ensureBubblewrap, ensurePip, ensureInstalledAndBuilt, gitDescribe, say, startRedis } from './lib/services.mjs';
import { ADMIN_KUBECONFIG, KUBERNETES_VERSION, WORKER_KUBECONFIG } from '../k8s/local-cluster/lib/config.mjs';

const ms = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
const times = (v) => `${v.toFixed(1)}×`;

function count(name, fallback) {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive whole number, got "${process.env[name]}"`);
  return value;
}

async function main() {
  const samples = count('BENCH_SAMPLES', 10);
  const coldSamples = count('BENCH_COLD_SAMPLES', 5);
  ensureInstalledAndBuilt();
  ensureBubblewrap();
  ensurePip();
  const local = !process.env.KUBECONFIG;
  if (local) {
    const up = spawnSync(process.execPath, [join(ROOT, 'k8s/local-cluster/cluster.mjs'), 'up'], { stdio: 'inherit', cwd: ROOT });
    if (up.status !== 0) throw new Error('the local cluster did not come up (see above)');
    process.env.KUBECONFIG = ADMIN_KUBECONFIG;
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'podflow-bench-redis-'));
  const redis = await startRedis(dataDir);
  try {
    const { runLayerLatency, SETS } = await import('../bench/layers.mjs');
    const results = await runLayerLatency({ samples, coldSamples, redisUrl: redis.url, workerKubeconfig: local ? WORKER_KUBECONFIG : undefined });
    const cell = (s) => `${ms(s.median)} / ${ms(s.p95)}`;
    const rows = [];
    for (const driver of ['process', 'kubernetes']) {
      for (const set of Object.keys(SETS)) {
        const r = results[`${driver}/${set}`];
        rows.push([driver, `${SETS[set].language}: ${SETS[set].dependencies.join(', ')}`, cell(r.none), cell(r.warm), cell(r.cold), times(r.warm.median / r.none.median), times(r.cold.median / r.warm.median)]);
      }
    }
    const machine = `Machine: ${cpus().length} cores, Node ${process.version}; cluster: ${local ? `local, Kubernetes ${KUBERNETES_VERSION}` : process.env.KUBECONFIG}; podflow ${gitDescribe()}; ${new Date().toISOString()}`;
    const table = [
      machine,
      '',
      `Per-node latency, execute() → answer with layer resolution included (median / p95 ms). No deps and warm: ${samples} interleaved samples each after one warm-up; cold: ${coldSamples} samples, the layer removed before each (on the process driver pip's and npm's download caches too), so each one downloads and installs:`,
      '',
      '| driver | package set | no deps | warm layer | cold layer | warm / no deps | cold / warm |',
      '|---|---|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.join(' | ')} |`),
      '',
    ].join('\n');
    process.stdout.write(`\n${table}`);
    mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
    writeFileSync(join(ROOT, 'bench', 'results', 'layers-latest.md'), table);
    writeFileSync(join(ROOT, 'bench', 'results', 'layers-latest.json'), `${JSON.stringify({ machine, results }, null, 2)}\n`);
    say('results written to bench/results/layers-latest.md');
  } finally {
    await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (error) => {
  say(`bench failed: ${error.stack ?? error.message}`);
  process.exit(1);
});
