#!/usr/bin/env node
// `npm run bench:containment`: what the process sandbox's containment costs per execution. A no-op
// Python node through ProcessDriver.execute(), interleaved round by round, in one run:
//   - contained: as root, everything on (dedicated uid, cgroups, home tmpfs, seccomp, bwrap);
//   - no cgroups: the same without per-execution cgroups (the rlimits-only path);
//   - egress: contained plus a granted egress namespace (slirp4netns);
// next to a bare `bwrap ... python3 -c pass` spawn. Medians and p95 in ms, and ratios to
// "contained". BENCH_SAMPLES (default 30). Prints a markdown table, also written to
// bench/results/containment-latest.md.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ROOT, ensureBubblewrap, ensureInstalledAndBuilt, ensureSandboxNetworking, gitDescribe, say } from './lib/services.mjs';

const WARMUP = 3;
const NOOP = 'def main(args):\n    return {}\n';

function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { median: at(0.5), p95: at(0.95), n: sorted.length };
}

async function main() {
  const samples = Number(process.env.BENCH_SAMPLES ?? 30);
  if (!Number.isInteger(samples) || samples < 1) throw new Error(`BENCH_SAMPLES must be a positive whole number, got "${process.env.BENCH_SAMPLES}"`);
  if (process.getuid?.() !== 0) throw new Error('bench:containment needs root (cgroups, home tmpfs and egress namespaces are root-only)');
  ensureInstalledAndBuilt();
  ensureBubblewrap();
  ensureSandboxNetworking();
  const { ProcessDriver } = await import('@podflow/sandbox');
  const workRoot = mkdtempSync(join(tmpdir(), 'podflow-bench-containment-'));
  await chmod(workRoot, 0o711);
  const contained = new ProcessDriver({ isolation: 'bubblewrap', workRoot });
  const noCgroups = new ProcessDriver({ isolation: 'bubblewrap', workRoot, cgroups: false });
  const report = await contained.init();
  await noCgroups.init();
  if (!report.cgroups || !report.egress || !report.seccomp) throw new Error(`this host lacks part of the containment: ${JSON.stringify(report)}`);
  let n = 0;
  const once = async (driver, network) => {
    const start = performance.now();
    const outcome = await driver.execute(
      { executionId: `bench.main.${++n}`, tenantId: 'bench', runId: 'bench', nodeId: 'main', attempt: 1, language: 'python', code: NOOP, args: {}, timeoutMs: 30_000, dependencies: [], network },
      new AbortController().signal,
    );
    await outcome.dispose();
    const ms = performance.now() - start;
    if (outcome.status !== 'succeeded') throw new Error(`no-op ended ${outcome.status}: ${JSON.stringify(outcome.error)}`);
    return ms;
  };
  const bare = () => {
    const start = performance.now();
    const result = spawnSync('bwrap', ['--unshare-all', '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', '/usr/bin/python3', '-c', 'pass'], { stdio: 'ignore' });
    if (result.status !== 0) throw new Error('bare bwrap spawn failed');
    return performance.now() - start;
  };
  const variants = {
    'bare bwrap + python3 -c pass': () => bare(),
    'no cgroups (rlimits only)': () => once(noCgroups, false),
    contained: () => once(contained, false),
    'contained + egress namespace': () => once(contained, true),
  };
  const times = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  try {
    for (let round = 0; round < WARMUP + samples; round++) {
      for (const [name, run] of Object.entries(variants)) {
        const ms = await run();
        if (round >= WARMUP) times[name].push(ms);
      }
    }
  } finally {
    await contained.close();
    await noCgroups.close();
    rmSync(workRoot, { recursive: true, force: true });
  }
  const base = summary(times.contained).median;
  const rows = Object.entries(times).map(([name, values]) => {
    const s = summary(values);
    return `| ${name} | ${s.median.toFixed(1)} | ${s.p95.toFixed(1)} | ${(s.median / base).toFixed(2)}× |`;
  });
  const table = [
    `Process sandbox containment, no-op Python node, ${samples} interleaved samples each (commit ${gitDescribe()}, ${cpus().length} cores):`,
    '',
    '| variant | median ms | p95 ms | median vs contained |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/containment-latest.md'), table);
  process.stdout.write(`${table}\n`);
}

main().catch((error) => {
  say(`bench:containment failed: ${error.message}`);
  process.exit(1);
});
