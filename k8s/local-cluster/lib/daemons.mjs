// Starts and stops the cluster's long-running processes without systemd: each runs detached in
// its own session with its log under logs/<name>.log and its pid under run/<name>.pid. A pid is
// only trusted while /proc/<pid>/cmdline still names the same binary, so a recycled pid is never
// signalled by mistake.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOG_DIR, RUN_DIR } from './config.mjs';
import { sleep } from './sh.mjs';

const pidFile = (name) => join(RUN_DIR, `${name}.pid`);
export const logFile = (name) => join(LOG_DIR, `${name}.log`);

function commandLineOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
}

/** The pid of daemon `name` if it is running, else undefined. */
export function runningPid(name) {
  if (!existsSync(pidFile(name))) return undefined;
  const { pid, binary } = JSON.parse(readFileSync(pidFile(name), 'utf8'));
  const commandLine = commandLineOf(pid);
  return commandLine && commandLine[0] === binary ? pid : undefined;
}

/** Starts `binary args` as daemon `name` unless it already runs. Returns true when it was started. */
export function startDaemon(name, binary, args, env = {}) {
  if (runningPid(name)) return false;
  mkdirSync(RUN_DIR, { recursive: true });
  mkdirSync(LOG_DIR, { recursive: true });
  const log = openSync(logFile(name), 'a');
  const child = spawn(binary, args, { detached: true, stdio: ['ignore', log, log], env: { ...process.env, ...env } });
  writeFileSync(pidFile(name), JSON.stringify({ pid: child.pid, binary }));
  child.unref();
  return true;
}

export function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; waits until the process is gone. */
export async function stopPid(pid, graceMs = 10_000) {
  if (!isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  while (isAlive(pid)) await sleep(50);
}

export async function stopDaemon(name, graceMs) {
  const pid = runningPid(name);
  if (pid) await stopPid(pid, graceMs);
  rmSync(pidFile(name), { force: true });
  return Boolean(pid);
}

/** The last lines of a daemon's log, for error messages. */
export function logTail(name, lines = 20) {
  try {
    return readFileSync(logFile(name), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
