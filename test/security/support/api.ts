import { readdirSync, readFileSync } from 'node:fs';
import { API_KEY, execute, type Stack } from '../../support/stack';

/** The other tenant of every test stack (`other-key=globex` in startStack). */
export const OTHER_KEY = 'other-key';

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface CallOptions {
  /** `null`: no Authorization header at all. */
  key?: string | null;
  /** A string is sent as is (so it can hold `__proto__` keys or broken JSON); anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Given a stack, When `method path` is called with `options`, Then this is what came back (never throws on a status). */
export async function call(stack: Stack, method: string, path: string, options: CallOptions = {}): Promise<ApiResponse> {
  const key = options.key === undefined ? API_KEY : options.key;
  const headers: Record<string, string> = { ...(key !== null ? { authorization: `Bearer ${key}` } : {}), ...(options.headers ?? {}) };
  let body: string | Buffer | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' || Buffer.isBuffer(options.body) ? options.body : JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${stack.url}${path}`, { method, headers, body, signal: options.signal });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** Then the service is still healthy: ready, and a normal execution still succeeds end to end. */
export async function expectHealthy(stack: Stack): Promise<void> {
  const ready = await call(stack, 'GET', '/readyz', { key: null });
  expect({ status: ready.status, body: ready.json?.status }).toEqual({ status: 200, body: 'ready' });
  const result = await execute(stack, 'python', 'def main(args):\n    return {"next": args["n"] + 1}\n', { n: 41 });
  expect({ status: result.status, output: result.output }).toEqual({ status: 'succeeded', output: { next: 42 } });
}

/** The pid of the stack's coordinator process, found by its QUEUE_PREFIX in /proc (same user). */
export function coordinatorPid(stack: Stack): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmdline.includes('services/coordinator/dist/main.js')) continue;
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(`QUEUE_PREFIX=${stack.prefix}`)) return Number(entry);
    } catch {
      // the process ended while we looked, or is not ours
    }
  }
  throw new Error(`no coordinator process with QUEUE_PREFIX=${stack.prefix}`);
}

/** Peak resident memory of a process in bytes (VmHWM): what it grew to, even if it shrank since. */
export function peakRssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? 0) * 1024;
}

/** Waits (polling, not asserting on time) until `check` holds; fails with `what` after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`still not true after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
