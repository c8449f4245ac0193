// What the processes of a bench stack use: CPU time and memory from /proc, and Redis's own count of
// the commands it ran (INFO commandstats, which counts the commands Lua scripts call too).
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** utime + stime of `pid` in seconds (/proc/<pid>/stat: fields 14 and 15, counted after the command's closing parenthesis). */
export function cpuSecondsOf(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** CPU seconds of `pid`'s children it has reaped (cutime + cstime). */
export function childrenCpuSecondsOf(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
}

/**
 * CPU seconds of what a worker started and has ended: its reaped children, plus its spawn server
 * (podflow-launch --spawn-server, which starts the sandboxes and reaps them) with what that reaped.
 */
export function helpersCpuSecondsOf(workerPid) {
  let seconds = childrenCpuSecondsOf(workerPid);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== workerPid) continue;
      if (!readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('--spawn-server')) continue;
      seconds += cpuSecondsOf(Number(entry)) + childrenCpuSecondsOf(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return seconds;
}

/** CPU seconds the whole machine has been busy (every core, all but idle and iowait; /proc/stat). */
export function machineBusySeconds() {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return (ticks.slice(0, 8).reduce((sum, value) => sum + value, 0) - ticks[3] - ticks[4]) / CLOCK_TICKS;
}

/** CPU seconds of each named pid. */
export function cpuOf(pids) {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSecondsOf(pid)]));
}

/** VmRSS and VmHWM of `pid` in MiB. */
export function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
}

/** The redis-server's process id (INFO server). */
export async function redisPid(redis) {
  return Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]);
}

/** Calls and microseconds per command so far (INFO commandstats). */
export async function commandStats(redis) {
  const stats = new Map();
  for (const match of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    stats.set(match[1], { calls: Number(match[2]), usec: Number(match[3]) });
  }
  return stats;
}

/** Redis commands run between two commandStats() readings, per node: calls, µs and the `top` busiest commands. */
export function commandsPerNode(before, after, nodes, top = 20) {
  const diff = [];
  for (const [name, { calls, usec }] of after) {
    const was = before.get(name) ?? { calls: 0, usec: 0 };
    if (calls > was.calls) diff.push({ name, calls: (calls - was.calls) / nodes, usec: (usec - was.usec) / nodes });
  }
  diff.sort((a, b) => b.calls - a.calls);
  const sum = (key) => diff.reduce((a, d) => a + d[key], 0);
  return { callsPerNode: sum('calls'), usecPerNode: sum('usec'), top: diff.slice(0, top) };
}

/**
 * What a run costs everyone else on its Redis: Redis serves no other client while a Lua script or a
 * MULTI runs, so another tenant sees a run's biggest atomic write as a stall. A client of its own
 * (`redis`, a dedicated connection) sends PING, waits for the answer, sleeps 1 ms, and so on until
 * `stop()`, which closes it and resolves to the longest and the 99th-percentile round trip in ms.
 */
export function startPingProbe(redis) {
  const times = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const sent = performance.now();
      await redis.ping();
      times.push(performance.now() - sent);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  })();
  let stopped;
  const stop = async () => {
    running = false;
    await loop.catch(() => undefined);
    redis.disconnect();
    const sorted = [...times].sort((a, b) => a - b);
    return { pings: sorted.length, longestMs: sorted.at(-1) ?? NaN, p99Ms: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? NaN };
  };
  return {
    /** Idempotent: a second call gets the first one's figures. */
    stop() {
      stopped ??= stop();
      return stopped;
    },
  };
}
