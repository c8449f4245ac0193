import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
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

/**
 * Resets the process's peak resident size to its current size (`clear_refs` 5), so a later
 * peakRssBytes shows what happened since, not what an earlier test left as the high-water mark.
 */
export function resetPeakRss(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/**
 * When a client sends `body` (written in 1 MiB chunks on a raw socket) to `path` and stops writing
 * as soon as an answer comes: its status, lower-cased headers and body. Unlike fetch, an answer
 * that arrives before the upload is complete (a 401 or 413 that does not read the body, then
 * closes the connection) is kept, whatever happens to the rest of the upload.
 */
export async function sendRaw(stack: Stack, method: string, path: string, headers: Record<string, string>, body: Buffer): Promise<{ status: number; headers: Record<string, string>; text: string }> {
  const url = new URL(path, stack.url);
  const head = [`${method} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, `Content-Length: ${body.length}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const received: Buffer[] = [];
    let answered = false;
    let sent = 0;
    let failure: string | undefined;
    socket.on('data', (chunk: Buffer) => {
      answered = true;
      received.push(chunk);
    });
    // After an early answer the coordinator reads on for a bounded while (api/lingering-close.ts),
    // so no write fails before the answer is read; one may fail after (a server that resets a
    // connection still sending past its bound): only the answer counts, and the error says why.
    socket.on('error', (error: NodeJS.ErrnoException) => (failure ??= error.code ?? error.message));
    socket.on('close', () => {
      const raw = Buffer.concat(received).toString();
      const [top = '', ...rest] = raw.split('\r\n\r\n');
      const [statusLine = '', ...headerLines] = top.split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0);
      if (!status) {
        return reject(new Error(`no HTTP answer to ${method} ${path} after ${sent} of ${body.length} body bytes (socket error: ${failure ?? 'none'}): ${JSON.stringify(raw.slice(0, 200))}`));
      }
      const parsed = Object.fromEntries(headerLines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      const payload = rest.join('\r\n\r\n');
      // Chunked answers (none of the errors is) would need decoding; a Content-Length one is the text itself.
      resolve({ status, headers: parsed, text: parsed['content-length'] ? payload.slice(0, Number(parsed['content-length'])) : payload });
    });
    socket.once('connect', () => {
      socket.write(`${head.join('\r\n')}\r\n\r\n`);
      const write = (offset: number): void => {
        if (answered || socket.destroyed || offset >= body.length) return;
        const chunk = body.subarray(offset, offset + 1024 * 1024);
        sent += chunk.length;
        if (socket.write(chunk)) setImmediate(() => write(offset + chunk.length));
        else socket.once('drain', () => write(offset + chunk.length));
      };
      write(0);
    });
    // A server that reads the whole body answers and keeps the connection: close it once answered.
    socket.on('data', () => setImmediate(() => socket.end()));
  });
}

/** Waits (polling, not asserting on time) until `check` holds; fails with `what` after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = 30_000, pauseMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`still not true after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}
