import { startStack, type Stack } from '../support/stack';
import { OTHER_KEY, call, eventually, expectHealthy } from './support/api';

// Issue 10, "Tests": every route × {no key, wrong key, another tenant's key} gives 401 or 404 and
// never the owner's data. The stack's keys: `test-key` → tenant acme (the owner), `other-key` →
// tenant globex.

/** A string only acme's run holds: it must appear in no answer given to anyone else. */
const SECRET = `acme-secret-${Math.random().toString(36).slice(2)}`;

interface Route {
  method: string;
  path: (ids: Ids) => string;
  body?: (ids: Ids) => unknown;
  /** What another tenant's valid key gets: 404 for acme's resources. */
  otherTenant: 404;
}

interface Ids {
  runId: string;
}

/** Every route of the controllers that takes an API key and names a resource of its owner. */
const OWNED_ROUTES: Route[] = [
  { method: 'GET', path: (ids) => `/v1/runs/${ids.runId}`, otherTenant: 404 },
  { method: 'GET', path: (ids) => `/v1/runs/${ids.runId}/events`, otherTenant: 404 },
  { method: 'POST', path: (ids) => `/v1/runs/${ids.runId}/cancel`, otherTenant: 404 },
  { method: 'POST', path: (ids) => `/v1/runs/${ids.runId}/nodes/writer/files/sign`, body: () => ({}), otherTenant: 404 },
  { method: 'GET', path: (ids) => `/v1/runs/${ids.runId}/webhook-deliveries`, otherTenant: 404 },
  { method: 'GET', path: () => '/v1/workflows/owned', otherTenant: 404 },
  { method: 'GET', path: () => '/v1/workflows/owned?version=1', otherTenant: 404 },
  { method: 'POST', path: () => '/v1/runs', body: () => ({ workflowId: 'owned' }), otherTenant: 404 },
];

/** Routes that take an API key but name nothing of the owner's: the key must still be valid. */
const KEYED_ROUTES: Array<{ method: string; path: string; body?: unknown }> = [
  { method: 'GET', path: '/v1/runs' },
  { method: 'POST', path: '/v1/runs', body: { workflow: { id: 'x', nodes: [{ id: 'a', language: 'python', code: 'def main(args): return {}' }] } } },
  { method: 'POST', path: '/v1/workflows', body: { id: 'x', nodes: [{ id: 'a', language: 'python', code: 'def main(args): return {}' }] } },
  { method: 'POST', path: '/v1/executions', body: { language: 'python', code: 'def main(args): return {}' } },
  { method: 'POST', path: '/v1/executions?wait=true', body: { language: 'python', code: 'def main(args): return {}' } },
  { method: 'GET', path: '/v1/usage' },
  { method: 'GET', path: '/v1/webhooks/secret' },
  { method: 'POST', path: '/v1/webhooks/secret/rotate' },
];

const NO_KEY = null;
const WRONG_KEYS = ['wrong-key', 'test-key-x', 'Bearer', ''];

describe('authorization matrix (issue 10)', () => {
  let stack: Stack;
  let ids: Ids;
  let downloadUrl: URL;
  beforeAll(async () => {
    stack = await startStack();
    const workflow = {
      id: 'owned',
      nodes: [{ id: 'writer', language: 'python', code: `def main(args):\n    open("secret.txt", "w").write("${SECRET}")\n    return {"secret": "${SECRET}"}\n` }],
    };
    expect((await call(stack, 'POST', '/v1/workflows', { body: workflow })).status).toBe(201);
    const run = await call(stack, 'POST', '/v1/runs', { body: { workflowId: 'owned', inputs: { secret: SECRET } } });
    ids = { runId: run.json.id as string };
    const finished = await eventually(async () => {
      const view = await call(stack, 'GET', `/v1/runs/${ids.runId}`);
      return view.json.status === 'succeeded' ? view : undefined;
    }, 'the owner run to succeed', 90_000);
    downloadUrl = new URL(finished.json.nodes.writer.files.elements[0].download_url as string);
  });
  afterAll(() => stack?.stop());
  afterEach(() => expectHealthy(stack));

  it.each(OWNED_ROUTES.map((route) => [`${route.method} ${route.path({ runId: ':id' })}`, route] as const))('%s: 401 without or with a wrong key, 404 for another tenant', async (_name, route) => {
    const answers = [];
    for (const key of [NO_KEY, ...WRONG_KEYS]) {
      const response = await call(stack, route.method, route.path(ids), { key, body: route.body?.(ids) });
      answers.push({ key, status: response.status, code: response.json?.error?.code, leaks: response.text.includes(SECRET) });
    }
    const other = await call(stack, route.method, route.path(ids), { key: OTHER_KEY, body: route.body?.(ids) });
    answers.push({ key: OTHER_KEY, status: other.status, code: other.json?.error?.code, leaks: other.text.includes(SECRET) });
    expect(answers).toEqual([
      ...[NO_KEY, ...WRONG_KEYS].map((key) => ({ key, status: 401, code: 'UNAUTHENTICATED', leaks: false })),
      { key: OTHER_KEY, status: route.otherTenant, code: 'NOT_FOUND', leaks: false },
    ]);
  });

  it.each(KEYED_ROUTES.map((route) => [`${route.method} ${route.path}`, route] as const))('%s: 401 without or with a wrong key, and the other tenant sees only its own', async (_name, route) => {
    for (const key of [NO_KEY, ...WRONG_KEYS]) {
      const response = await call(stack, route.method, route.path, { key, body: route.body });
      expect({ key, status: response.status, code: response.json?.error?.code }).toEqual({ key, status: 401, code: 'UNAUTHENTICATED' });
    }
    const other = await call(stack, route.method, route.path, { key: OTHER_KEY, body: route.body });
    expect(other.status).toBeLessThan(300);
    expect(other.text).not.toContain(SECRET);
    expect(other.text).not.toContain(ids.runId);
  });

  it('lists only the caller\'s runs, and the owner still sees its own', async () => {
    const theirs = await call(stack, 'GET', '/v1/runs?limit=200', { key: OTHER_KEY });
    expect(theirs.json.runs.map((run: { id: string }) => run.id)).not.toContain(ids.runId);
    const mine = await call(stack, 'GET', '/v1/runs?limit=200');
    expect(mine.json.runs.map((run: { id: string }) => run.id)).toContain(ids.runId);
    // The other tenant's cancel changed nothing.
    expect((await call(stack, 'GET', `/v1/runs/${ids.runId}`)).json).toMatchObject({ status: 'succeeded', outputs: { writer: { secret: SECRET } } });
  });

  it('serves files by signature only: no key needed, any change to the URL is 401, other keys do not help', async () => {
    expect(await (await fetch(downloadUrl)).text()).toBe(SECRET);
    const tampered = [
      new URL(downloadUrl.href.replace(/signature=([0-9a-f])/, (_m, c: string) => `signature=${c === '0' ? '1' : '0'}`)),
      new URL(downloadUrl.href.replace(/expires=(\d+)/, (_m, n: string) => `expires=${Number(n) + 1}`)),
      new URL(`${downloadUrl.origin}${downloadUrl.pathname}`),
      new URL(`${downloadUrl.origin}${downloadUrl.pathname.replace('secret.txt', 'other.txt')}${downloadUrl.search}`),
    ];
    for (const url of tampered) {
      for (const key of [NO_KEY, OTHER_KEY]) {
        const response = await fetch(url, { headers: key ? { authorization: `Bearer ${key}` } : {} });
        const text = await response.text();
        expect({ url: url.href, key, status: response.status, leaks: text.includes(SECRET) }).toEqual({ url: url.href, key, status: 401, leaks: false });
      }
    }
  });

  it('keeps health and docs public and free of tenant data', async () => {
    for (const path of ['/healthz', '/readyz', '/docs/openapi.json']) {
      const response = await call(stack, 'GET', path, { key: NO_KEY });
      expect({ path, status: response.status, leaks: response.text.includes(SECRET) || response.text.includes(ids.runId) }).toEqual({ path, status: 200, leaks: false });
    }
  });
});
