import { verifySignature, type RunCompletion } from '@podflow/client';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OTHER_KEY, call } from '../security/support/api';
import { startStack, type Stack } from '../support/stack';

// Issue 13, webhooks: a run names a URL that receives its completion as a POST signed with the
// tenant's secret, retried with backoff, every attempt logged; URLs that resolve to loopback,
// link-local (metadata) or private addresses are refused, at submission and on every redirect.
// The receiver listens on 127.0.0.2: the operator allows exactly that address for this test
// (WEBHOOK_ALLOWED_CIDRS), so 127.0.0.1 (`localhost`) stays refused as by default.
const ADMIN_KEY = `admin-${'w'.repeat(30)}`;
const workflow = { id: 'hooked', nodes: [{ id: 'a', language: 'python', code: 'def main(args): return {}' }], output: '{ "n": inputs.n }' };

interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

describe('webhooks (issue 13)', () => {
  let stack: Stack;
  let receiver: Server;
  let base: string;
  const received: Received[] = [];
  const failuresLeft = new Map<string, number>([['/flaky', 2]]);

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '';
        received.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString() });
        if (path === '/redirect-to-metadata') {
          res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
          return;
        }
        const left = failuresLeft.get(path) ?? 0;
        if (left > 0) {
          failuresLeft.set(path, left - 1);
          res.writeHead(500).end('not yet');
          return;
        }
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.2', resolve));
    base = `http://127.0.0.2:${(receiver.address() as AddressInfo).port}`;
    stack = await startStack({
      workerEnv: { SANDBOX_DRIVER: 'noop' },
      coordinatorEnv: { PODFLOW_ADMIN_KEY: ADMIN_KEY, WEBHOOK_ALLOWED_CIDRS: '127.0.0.2/32', WEBHOOK_BACKOFF_MS: '100', WEBHOOK_MAX_ATTEMPTS: '4' },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await new Promise((resolve) => receiver?.close(resolve));
  });

  const deliveriesTo = (path: string) => received.filter((r) => r.path === path);
  async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  it("POSTs the completion signed with the tenant's secret; the receiver verifies it", async () => {
    const { json: secret } = await call(stack, 'GET', '/v1/webhooks/secret');
    expect(secret).toEqual({ secret: expect.stringMatching(/^whsec_/), header: 'podflow-signature' });
    const created = await call(stack, 'POST', '/v1/runs', { body: { workflow, inputs: { n: 3 }, webhookUrl: `${base}/ok`, correlationId: 'order-17' } });
    expect(created.status).toBe(202);
    const delivery = await until('the delivery', () => deliveriesTo('/ok')[0]);
    const signature = String(delivery.headers['podflow-signature']);
    expect(verifySignature(signature, delivery.body, secret.secret, Math.floor(Date.now() / 1000))).toBe(true);
    // Any other secret, or a changed body, does not verify.
    expect(verifySignature(signature, delivery.body, `${secret.secret}x`, Math.floor(Date.now() / 1000))).toBe(false);
    expect(verifySignature(signature, delivery.body.replace('"n":3', '"n":4'), secret.secret, Math.floor(Date.now() / 1000))).toBe(false);
    const completion = JSON.parse(delivery.body) as RunCompletion;
    expect(completion).toMatchObject({ runId: created.json.id, tenantId: 'acme', status: 'succeeded', outputs: { n: 3 }, correlationId: 'order-17' });
    expect(delivery.headers['content-type']).toBe('application/json');
    expect(delivery.headers['podflow-attempt']).toBe('1');
  });

  it('after a rotation signs with the new secret and, for a day, the previous one too', async () => {
    const { json: old } = await call(stack, 'GET', '/v1/webhooks/secret');
    const rotated = await call(stack, 'POST', '/v1/webhooks/secret/rotate');
    expect(rotated.status).toBe(200);
    expect(rotated.json.secret).not.toBe(old.secret);
    expect(Date.parse(rotated.json.previousValidUntil) - Date.now()).toBeGreaterThan(23 * 3600 * 1000);
    expect((await call(stack, 'GET', '/v1/webhooks/secret')).json.secret).toBe(rotated.json.secret);
    // Another tenant's secret is its own.
    expect((await call(stack, 'GET', '/v1/webhooks/secret', { key: OTHER_KEY })).json.secret).not.toBe(rotated.json.secret);
    const created = await call(stack, 'POST', '/v1/runs', { body: { workflow, inputs: { n: 5 }, webhookUrl: `${base}/rotated` } });
    expect(created.status).toBe(202);
    const delivery = await until('the delivery', () => deliveriesTo('/rotated')[0]);
    const now = Math.floor(Date.now() / 1000);
    const header = String(delivery.headers['podflow-signature']);
    expect(header.match(/v1=/g)).toHaveLength(2);
    expect(verifySignature(header, delivery.body, rotated.json.secret, now)).toBe(true);
    expect(verifySignature(header, delivery.body, old.secret, now)).toBe(true);
  });

  it('retries a receiver that fails twice, and the delivery log shows every attempt', async () => {
    const created = await call(stack, 'POST', '/v1/runs', { body: { workflow, inputs: { n: 1 }, webhookUrl: `${base}/flaky` } });
    expect(created.status).toBe(202);
    await until('three attempts', () => (deliveriesTo('/flaky').length >= 3 ? true : undefined));
    const log = await until('the delivered log line', async () => {
      const { json } = await call(stack, 'GET', `/v1/runs/${created.json.id}/webhook-deliveries`);
      return json.deliveries.length === 3 ? json.deliveries : undefined;
    });
    expect(log.map((d: { attempt: number; status: number; outcome: string }) => [d.attempt, d.status, d.outcome])).toEqual([
      [1, 500, 'retrying'],
      [2, 500, 'retrying'],
      [3, 200, 'delivered'],
    ]);
    expect(deliveriesTo('/flaky').map((d) => d.headers['podflow-attempt'])).toEqual(['1', '2', '3']);
    // The same body each time: the receiver can deduplicate on it (and on podflow-delivery).
    expect(new Set(deliveriesTo('/flaky').map((d) => d.body)).size).toBe(1);
    expect(new Set(deliveriesTo('/flaky').map((d) => d.headers['podflow-delivery'])).size).toBe(1);
    // Another tenant cannot read this run's log.
    expect((await call(stack, 'GET', `/v1/runs/${created.json.id}/webhook-deliveries`, { key: OTHER_KEY })).status).toBe(404);
  });

  it.each([
    ['localhost', 'http://localhost:9/hook', /host localhost does not resolve to a public address/],
    ['the metadata address', 'http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254.*link-local/],
    ['a private address', 'http://10.1.2.3/hook', /10\.1\.2\.3.*private/],
    ['a scheme other than http(s)', 'ftp://example.com/hook', /http/],
  ])('refuses a webhook URL naming %s with a 400 that says why, and starts no run', async (_what, url, reason) => {
    const before = (await call(stack, 'GET', '/v1/runs')).json.runs.length;
    const refused = await call(stack, 'POST', '/v1/runs', { body: { workflow, webhookUrl: url } });
    expect(refused.status).toBe(400);
    expect(refused.json.error.code).toBe('BAD_REQUEST');
    expect(refused.json.error.message).toMatch(reason);
    expect((await call(stack, 'GET', '/v1/runs')).json.runs.length).toBe(before);
  });

  it('refuses a redirect to the metadata address at delivery time, without retrying it', async () => {
    const created = await call(stack, 'POST', '/v1/runs', { body: { workflow, webhookUrl: `${base}/redirect-to-metadata` } });
    expect(created.status).toBe(202);
    const log = await until('the failed log line', async () => {
      const { json } = await call(stack, 'GET', `/v1/runs/${created.json.id}/webhook-deliveries`);
      return json.deliveries.length > 0 ? json.deliveries : undefined;
    });
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ outcome: 'failed', ok: false, url: 'http://169.254.169.254/latest/meta-data/' });
    expect(log[0].error).toMatch(/169\.254\.169\.254.*link-local/);
    expect(deliveriesTo('/redirect-to-metadata')).toHaveLength(1);
  });

  it("keeps to the tenant's allowed hosts once an operator sets them", async () => {
    const admin = (method: string, path: string, body?: unknown) => call(stack, method, path, { key: ADMIN_KEY, body });
    expect((await admin('PATCH', '/v1/admin/tenants/globex', { webhookHosts: ['hooks.example.com'] })).json).toMatchObject({ webhookHosts: ['hooks.example.com'] });
    const refused = await call(stack, 'POST', '/v1/runs', { key: OTHER_KEY, body: { workflow, webhookUrl: `${base}/ok` } });
    expect(refused.status).toBe(400);
    expect(refused.json.error.message).toContain('webhook host "127.0.0.2" is not one tenant "globex" may call (allowed: hooks.example.com)');
    // An empty list allows no host at all.
    expect((await admin('PATCH', '/v1/admin/tenants/globex', { webhookHosts: [] })).json).toMatchObject({ webhookHosts: [] });
    expect((await call(stack, 'POST', '/v1/runs', { key: OTHER_KEY, body: { workflow, webhookUrl: `${base}/ok` } })).status).toBe(400);
    // Back to the operator's setting.
    await admin('PATCH', '/v1/admin/tenants/globex', { webhookHosts: null });
    expect((await call(stack, 'POST', '/v1/runs', { key: OTHER_KEY, body: { workflow, webhookUrl: `${base}/ok` } })).status).toBe(202);
  });
});
