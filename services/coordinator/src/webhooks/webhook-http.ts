import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  WebhookTargetError,
  parseWebhookUrl,
  resolveWebhookTarget,
  webhookHost,
  type WebhookLookup,
  type WebhookNetworkPolicy,
  type WebhookTarget,
} from './webhook-address';

/** What one delivery attempt came to. */
export interface AttemptOutcome {
  /** The receiver answered 2xx. */
  ok: boolean;
  /** The last HTTP status received, if any. */
  status?: number;
  /** Why the attempt failed, for the delivery log. */
  error?: string;
  /**
   * Retrying cannot help until the URL, the policy or the receiver changes: a refused or malformed
   * URL, a 4xx other than 408 and 429, a redirect loop. Network errors, timeouts, 408, 429 and
   * 5xx are worth retrying.
   */
  permanent: boolean;
  durationMs: number;
  /** The URL last tried: the final one after redirects, or the hop that was refused. */
  url: string;
  /** Redirects acted on, including one whose target was then refused. */
  redirects: number;
}

export interface PostWebhookOptions {
  policy: WebhookNetworkPolicy;
  /** Bounds the whole attempt: every hop's DNS lookup, connection, request and response. */
  timeoutMs: number;
  maxRedirects: number;
  /** The tenant's host allow-list, checked on the first URL and on every redirect. */
  hostAllowed: (host: string) => boolean;
  /** The tenant the webhook is for: its DNS lookups share one slot (webhook-lookups.ts). */
  owner?: string;
  lookup?: WebhookLookup;
}

const USER_AGENT = 'podflow-webhooks/1';
/** The receiver's answer is not used; reading a little lets it finish writing before we hang up. */
const RESPONSE_BODY_LIMIT = 64 * 1024;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Node's refusals of malformed header names or values: the same headers fail every time. */
const INVALID_REQUEST_CODES = new Set(['ERR_INVALID_CHAR', 'ERR_INVALID_HTTP_TOKEN', 'ERR_HTTP_INVALID_HEADER_VALUE']);

type Verdict = Pick<AttemptOutcome, 'ok' | 'status' | 'error' | 'permanent'>;

/** Where an attempt has got to; read when it ends, however it ends. */
interface Progress {
  url: string;
  redirects: number;
}

interface Answer {
  status: number;
  location?: string;
}

/**
 * POSTs `body` (JSON) to `url` once, following redirects by hand so that every hop is checked
 * against the tenant's allowed hosts and the network policy, after DNS, and the connection goes
 * to the vetted address (with the host name kept for Host, SNI and certificate checks). A 303
 * is answered with a POST too: receivers redirect webhooks to move them, not to have them
 * fetched. Never throws: every failure is an outcome.
 */
export async function postWebhook(url: string, body: string, headers: Record<string, string>, options: PostWebhookOptions): Promise<AttemptOutcome> {
  const started = performance.now();
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), options.timeoutMs);
  const progress: Progress = { url, redirects: 0 };
  let verdict: Verdict;
  try {
    verdict = await followRedirects(progress, body, headers, options, deadline.signal);
  } catch (error) {
    verdict = failureVerdict(error, progress.url, deadline.signal.aborted, options.timeoutMs);
  } finally {
    clearTimeout(timer);
  }
  return { ...verdict, url: progress.url, redirects: progress.redirects, durationMs: Math.round(performance.now() - started) };
}

async function followRedirects(progress: Progress, body: string, headers: Record<string, string>, options: PostWebhookOptions, signal: AbortSignal): Promise<Verdict> {
  for (;;) {
    const target = await vetTarget(progress.url, options, signal);
    const answer = await send(target, body, headers, signal);
    if (!REDIRECT_STATUSES.has(answer.status) || !answer.location) return statusVerdict(answer.status);
    if (progress.redirects >= options.maxRedirects) {
      return { ok: false, permanent: true, status: answer.status, error: `too many redirects: ${progress.url} redirects again after ${progress.redirects}, and at most ${options.maxRedirects} are followed` };
    }
    progress.url = redirectTarget(progress.url, answer.location);
    progress.redirects += 1;
  }
}

/** @throws WebhookTargetError when the host is not allowed or the URL or its addresses are refused. */
async function vetTarget(url: string, options: PostWebhookOptions, signal: AbortSignal): Promise<WebhookTarget> {
  // The allow-list comes before DNS, so a host the tenant may not use is never even looked up.
  const host = webhookHost(parseWebhookUrl(url));
  if (!options.hostAllowed(host)) {
    throw new WebhookTargetError(`webhook URL ${url} goes to host ${host}, which is not among the tenant's allowed webhook hosts; ask the operator to allow it`, `${host} is not an allowed webhook host`);
  }
  return untilAborted(resolveWebhookTarget(url, options.policy, options.lookup, { owner: options.owner, signal }), signal);
}

function redirectTarget(from: string, location: string): string {
  try {
    return new URL(location, from).href;
  } catch {
    throw new WebhookTargetError(`webhook URL ${from} redirects to ${JSON.stringify(location.slice(0, 200))}, which is not a URL`, 'the redirect is not a URL');
  }
}

/** One POST to the vetted address; resolves once the status is in and the body read (up to the limit). */
function send(target: WebhookTarget, body: string, headers: Record<string, string>, signal: AbortSignal): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const hostname = webhookHost(target.url);
    const options: https.RequestOptions = {
      method: 'POST',
      hostname,
      port: target.url.port || undefined,
      path: target.url.pathname + target.url.search,
      // The fixed headers come last so a caller's header cannot replace them.
      headers: { ...headers, 'content-type': 'application/json', 'user-agent': USER_AGENT, 'content-length': String(Buffer.byteLength(body)) },
      lookup: pinnedLookup(target.address, target.family),
      // SNI takes names only; an IP literal's certificate is checked against the IP anyway.
      servername: isIP(hostname) ? undefined : hostname,
      // A fresh connection per hop: a pooled socket would skip the vetted lookup above.
      agent: false,
      signal,
    };
    let answered = false;
    const onResponse = (response: http.IncomingMessage) => {
      answered = true;
      const answer = { status: response.statusCode ?? 0, location: response.headers.location };
      readAndDiscard(response, () => resolve(answer));
    };
    const request = target.url.protocol === 'https:' ? https.request(options, onResponse) : http.request(options, onResponse);
    // Once the status is in, it is the receiver's verdict: a failure while reading the body
    // (or the deadline passing then) does not change it.
    request.on('error', (error) => {
      if (!answered) reject(error);
    });
    request.end(body);
  });
}

/** Drains up to RESPONSE_BODY_LIMIT bytes, then hangs up; calls `done` once the response is closed. */
function readAndDiscard(response: http.IncomingMessage, done: () => void): void {
  let received = 0;
  response.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received >= RESPONSE_BODY_LIMIT) response.destroy();
  });
  response.on('error', () => undefined);
  response.on('close', done);
}

/** A `lookup` for http.request that answers with the vetted address whatever DNS says now. */
function pinnedLookup(address: string, family: 4 | 6): LookupFunction {
  return (_hostname, options, callback) => {
    // With autoSelectFamily (on by default since Node 20) net asks for every address, as a list.
    if (options.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
}

function statusVerdict(status: number): Verdict {
  if (status >= 200 && status < 300) return { ok: true, permanent: false, status };
  // 408, 429 and 5xx say "not now"; any other answer will be the same on a retry.
  const transient = status === 408 || status === 429 || status >= 500;
  return { ok: false, permanent: !transient, status, error: `the receiver answered HTTP ${status}` };
}

function failureVerdict(error: unknown, url: string, timedOut: boolean, timeoutMs: number): Verdict {
  if (error instanceof WebhookTargetError) return { ok: false, permanent: !error.temporary, error: error.message };
  if (timedOut) return { ok: false, permanent: false, error: `timed out: no complete answer from ${url} within ${timeoutMs} ms (WEBHOOK_TIMEOUT_MS)` };
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  // Not `instanceof Error`: errors from another realm (a vm context, Jest) would fail it.
  const message = typeof (error as Error | undefined)?.message === 'string' ? (error as Error).message : String(error);
  return { ok: false, permanent: code !== undefined && INVALID_REQUEST_CODES.has(code), error: `POST ${url} failed: ${message}` };
}

/** `work`, or a rejection as soon as `signal` aborts (a DNS lookup cannot itself be canceled). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
