// Small process helpers for the cluster scripts: run a command loudly, capture its output, time steps.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

export function say(message) {
  process.stderr.write(`[cluster] ${message}\n`);
}

/** Runs a command, inheriting stdio unless `quiet`; throws with the command and its stderr tail on failure. */
export function run(command, args, options = {}) {
  const { quiet = false, ...spawnOptions } = options;
  const result = spawnSync(command, args, {
    // `input` (text for stdin) needs a pipe there.
    stdio: quiet ? [spawnOptions.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'] : 'inherit',
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    ...spawnOptions,
  });
  if (result.error) throw new Error(`${command}: ${result.error.message}`);
  if (result.status !== 0) {
    const tail = quiet ? `\n${(result.stderr || result.stdout || '').trim().split('\n').slice(-15).join('\n')}` : '';
    throw new Error(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}${tail}`);
  }
  return result.stdout ?? '';
}

/** Runs a command and returns its trimmed stdout, or undefined when it fails. */
export function tryRun(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

export function which(binary) {
  return tryRun('sh', ['-c', `command -v ${binary}`]);
}

/** Times a step and prints how long it took. */
export async function step(name, fn) {
  const started = Date.now();
  say(`${name} ...`);
  const value = await fn();
  say(`${name}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return value;
}

export const sleep = (ms) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

/** Polls `probe` until it returns a truthy value or `timeoutMs` passes; the error names what was awaited. */
export async function waitFor(what, probe, { timeoutMs = 60_000, intervalMs = 500, hint = '' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(intervalMs);
  }
  const cause = lastError ? ` (last error: ${lastError.message})` : '';
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${cause}${hint ? `. ${hint}` : ''}`);
}

/**
 * Writes a daemon's configuration only when its content changes, and says whether it did: a
 * running daemon is restarted only then (kube-proxy even exits by itself when its file changes).
 */
export function writeIfChanged(file, content, mode = 0o644) {
  if (existsSync(file) && readFileSync(file, 'utf8') === content) return false;
  writeFileSync(file, content, { mode });
  return true;
}
