// Benchmark 1: end-to-end latency of one no-op Code node on the process driver, through
// `POST /v1/executions?wait=true` (sequential, after warm-up), next to the bare interpreter spawn.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { log, summary, withStack } from './lib.mjs';

export const PYTHON_NOOP = 'def main(args):\n    return {}\n';
export const TYPESCRIPT_NOOP = 'export function main(): {} { return {}; }\n';
const WARMUP = 3;

const PYTHON_BIN = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** spawnSync wall time of a bare interpreter start, `samples` times. */
export function bareSpawn(command, args, samples) {
  spawnSync(command, args); // warm the page cache
  const times = [];
  for (let i = 0; i < samples; i++) {
    const start = performance.now();
    const result = spawnSync(command, args, { stdio: 'ignore' });
    times.push(performance.now() - start);
    if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}`);
  }
  return summary(times);
}

async function executionLatency(stack, language, code, samples) {
  const once = async () => {
    const start = performance.now();
    const result = await stack.client.execute({ language, code });
    const ms = performance.now() - start;
    if (result.status !== 'succeeded') throw new Error(`${language} no-op node ended ${result.status}: ${JSON.stringify(result.error ?? result)}`);
    // The node's own startedAt → finishedAt (reported by the worker around the sandbox run).
    return { ms, workerMs: result.timings?.durationMs };
  };
  for (let i = 0; i < WARMUP; i++) await once();
  const times = [];
  const workerTimes = [];
  for (let i = 0; i < samples; i++) {
    const { ms, workerMs } = await once();
    times.push(ms);
    if (typeof workerMs === 'number') workerTimes.push(workerMs);
  }
  return { ...summary(times), worker: summary(workerTimes) };
}

export async function runLatency({ redisUrl, samples }) {
  const python = bareSpawn(PYTHON_BIN, ['-c', 'pass'], samples);
  const node = bareSpawn(process.execPath, ['-e', '0'], samples);
  log(`bare spawn: python3 ${python.median.toFixed(1)} ms, node ${node.median.toFixed(1)} ms (median)`);
  return withStack({ redisUrl, concurrency: 2, driver: 'process' }, async (stack) => {
    const py = await executionLatency(stack, 'python', PYTHON_NOOP, samples);
    log(`python node: ${py.median.toFixed(1)} ms median`);
    const ts = await executionLatency(stack, 'typescript', TYPESCRIPT_NOOP, samples);
    log(`typescript node: ${ts.median.toFixed(1)} ms median`);
    return { samples, pythonBin: PYTHON_BIN, bare: { python, node }, nodes: { python: py, typescript: ts }, warnings: stack.warnings() };
  });
}
