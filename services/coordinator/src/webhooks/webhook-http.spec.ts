import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostAllowed, type WebhookLookup, type WebhookNetworkPolicy } from './webhook-address';
import { postWebhook, type PostWebhookOptions } from './webhook-http';

interface Received {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Names the fake resolver knows; the real one is never asked. */
const HOSTS: Record<string, string> = {
  'hooks.test': '127.0.0.1',
  'metadata.test': '169.254.169.254',
  'elsewhere.test': '127.0.0.1',
};

const lookup: WebhookLookup = async (hostname) => {
  const address = HOSTS[hostname];
  if (!address) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  return [{ address, family: 4 }];
};

const LOOPBACK_ALLOWED: WebhookNetworkPolicy = { allowedCidrs: ['127.0.0.1/32'] };

/** Each path is one receiver behaviour. */
function route(pathAndQuery: string, response: http.ServerResponse): void {
  const path = pathAndQuery.split('?')[0];
  const [status, location] = ROUTES[path] ?? [404];
  if (status === 0) return; // never answers
  if (location) response.setHeader('location', location);
  response.writeHead(status).end(path === '/large' ? 'x'.repeat(1024 * 1024) : 'ok');
}

const ROUTES: Record<string, [number, string?]> = {
  '/ok': [200],
  '/large': [200],
  '/broken': [500],
  '/busy': [429],
  '/rejects': [400],
  '/moved': [302, '/ok'],
  '/see-other': [303, '/ok'],
  '/to-metadata': [307, 'http://metadata.test/latest/meta-data/'],
  '/to-elsewhere': [308, 'http://elsewhere.test/ok'],
  '/loop': [302, '/loop'],
  '/hangs': [0],
};

describe('postWebhook', () => {
  const received: Received[] = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      received.push({ method: request.method!, path: request.url!, headers: request.headers, body });
      route(request.url!, response);
    });
  });
  let port = 0;

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  beforeEach(() => {
    received.length = 0;
  });

  const body = '{"runId":"run_1","note":"héllo ✓"}';
  const url = (path: string) => `http://hooks.test:${port}${path}`;
  const options = (overrides: Partial<PostWebhookOptions> = {}): PostWebhookOptions => ({
    policy: LOOPBACK_ALLOWED,
    timeoutMs: 5000,
    maxRedirects: 3,
    hostAllowed: (host) => hostAllowed(host, ['hooks.test', 'metadata.test', '127.0.0.1']),
    lookup,
    ...overrides,
  });

  it('POSTs the body and headers intact, to the vetted address under the URL host name', async () => {
    const outcome = await postWebhook(url('/ok?attempt=1'), body, { 'podflow-signature': 't=1,v1=ab', 'User-Agent': 'spoofed' }, options());
    expect(outcome).toMatchObject({ ok: true, status: 200, permanent: false, url: url('/ok?attempt=1'), redirects: 0 });
    expect(outcome.error).toBeUndefined();
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ method: 'POST', path: '/ok?attempt=1', body });
    expect(received[0].headers).toMatchObject({
      host: `hooks.test:${port}`,
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'user-agent': 'podflow-webhooks/1',
      'podflow-signature': 't=1,v1=ab',
    });
  });

  it('retries 5xx and 429 but not other 4xx', async () => {
    expect(await postWebhook(url('/broken'), body, {}, options())).toMatchObject({ ok: false, status: 500, permanent: false, error: 'the receiver answered HTTP 500' });
    expect(await postWebhook(url('/busy'), body, {}, options())).toMatchObject({ ok: false, status: 429, permanent: false });
    expect(await postWebhook(url('/rejects'), body, {}, options())).toMatchObject({ ok: false, status: 400, permanent: true });
  });

  it('reads only part of a large answer', async () => {
    expect(await postWebhook(url('/large'), body, {}, options())).toMatchObject({ ok: true, status: 200 });
  });

  it('follows a redirect to an allowed URL, POSTing the same body again', async () => {
    const outcome = await postWebhook(url('/moved'), body, { 'podflow-delivery': 'd1' }, options());
    expect(outcome).toMatchObject({ ok: true, status: 200, url: url('/ok'), redirects: 1 });
    expect(received.map(({ method, path }) => `${method} ${path}`)).toEqual(['POST /moved', 'POST /ok']);
    expect(received[1]).toMatchObject({ body, headers: { 'podflow-delivery': 'd1' } });
    expect(await postWebhook(url('/see-other'), body, {}, options())).toMatchObject({ ok: true, redirects: 1 });
    expect(received.at(-1)).toMatchObject({ method: 'POST', path: '/ok' });
  });

  it('refuses a redirect to the metadata address without connecting to it', async () => {
    const outcome = await postWebhook(url('/to-metadata'), body, {}, options());
    expect(outcome).toMatchObject({ ok: false, permanent: true, url: 'http://metadata.test/latest/meta-data/', redirects: 1 });
    expect(outcome.status).toBeUndefined();
    expect(outcome.error).toBe(
      'webhook URL http://metadata.test/latest/meta-data/: host metadata.test does not resolve to a public address: check its DNS record; webhooks go to public addresses only (an operator can allow a range with WEBHOOK_ALLOWED_CIDRS)',
    );
    expect(received.map(({ path }) => path)).toEqual(['/to-metadata']);
  });

  it('refuses a redirect to a host outside the allowed hosts', async () => {
    const outcome = await postWebhook(url('/to-elsewhere'), body, {}, options());
    expect(outcome).toMatchObject({ ok: false, permanent: true, url: 'http://elsewhere.test/ok' });
    expect(outcome.error).toBe(
      "webhook URL http://elsewhere.test/ok goes to host elsewhere.test, which is not among the tenant's allowed webhook hosts; ask the operator to allow it",
    );
    expect(received).toHaveLength(1);
  });

  it('gives up on a redirect loop', async () => {
    const outcome = await postWebhook(url('/loop'), body, {}, options({ maxRedirects: 2 }));
    expect(outcome).toMatchObject({ ok: false, permanent: true, status: 302, redirects: 2 });
    expect(outcome.error).toBe(`too many redirects: ${url('/loop')} redirects again after 2, and at most 2 are followed`);
    expect(received).toHaveLength(3);
  });

  it('ends an attempt the receiver never answers at timeoutMs', async () => {
    const outcome = await postWebhook(url('/hangs'), body, {}, options({ timeoutMs: 200 }));
    expect(outcome).toMatchObject({ ok: false, permanent: false, error: `timed out: no complete answer from ${url('/hangs')} within 200 ms (WEBHOOK_TIMEOUT_MS)` });
    expect(outcome.status).toBeUndefined();
  });

  it('reports a receiver that is down as worth retrying', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const outcome = await postWebhook(`http://hooks.test:${closedPort}/ok`, body, {}, options());
    expect(outcome).toMatchObject({ ok: false, permanent: false });
    expect(outcome.error).toBe(`POST http://hooks.test:${closedPort}/ok failed: connect ECONNREFUSED 127.0.0.1:${closedPort}`);
  });

  it('refuses loopback under the default policy, before connecting', async () => {
    const outcome = await postWebhook(`http://127.0.0.1:${port}/ok`, body, {}, options({ policy: { allowedCidrs: [] } }));
    expect(outcome).toMatchObject({ ok: false, permanent: true, redirects: 0 });
    expect(outcome.error).toMatch(new RegExp(`^webhook URL http://127\\.0\\.0\\.1:${port}/ok points at 127\\.0\\.0\\.1, a loopback address;`));
    expect(received).toHaveLength(0);
  });

  it('returns a malformed URL as a permanent failure instead of throwing', async () => {
    expect(await postWebhook('not a url', body, {}, options())).toMatchObject({ ok: false, permanent: true, url: 'not a url' });
  });
});
