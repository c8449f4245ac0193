import { randomBytes } from 'node:crypto';
import { freePort, startStack, type Stack } from '../support/stack';
import { OTHER_KEY, call, eventually } from './support/api';

// Issue 13, tenants and keys as data: the admin API (its own key, never a tenant key), keys issued,
// rotated and revoked at run time on every coordinator, disabled tenants. The stack's bootstrap
// keys: `test-key` → acme, `other-key` → globex (PODFLOW_API_KEYS).
const ADMIN_KEY = `admin-${randomBytes(16).toString('hex')}`;
const TENANT_KEY = 'test-key';
const code = 'def main(args): return {}';
const inlineRun = { workflow: { id: 'w', nodes: [{ id: 'a', language: 'python', code }] } };

/** Every admin route, with ids that exist once `initech` and a key of it do. */
function adminRoutes(keyId: string): Array<{ method: string; path: string; body?: unknown }> {
  return [
    { method: 'POST', path: '/v1/admin/tenants', body: { id: `t-${randomBytes(3).toString('hex')}` } },
    { method: 'GET', path: '/v1/admin/tenants' },
    { method: 'GET', path: '/v1/admin/tenants/initech' },
    { method: 'PATCH', path: '/v1/admin/tenants/initech', body: { name: 'Initech' } },
    { method: 'POST', path: '/v1/admin/tenants/initech/keys', body: { name: 'x' } },
    { method: 'GET', path: '/v1/admin/tenants/initech/keys' },
    { method: 'POST', path: `/v1/admin/tenants/initech/keys/${keyId}/rotate` },
    { method: 'DELETE', path: `/v1/admin/tenants/initech/keys/${keyId}` },
    { method: 'GET', path: '/v1/admin/usage' },
  ];
}

describe('admin API: tenants and keys as data (issue 13)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ coordinatorEnv: { PODFLOW_ADMIN_KEY: ADMIN_KEY } });
  });
  afterAll(() => stack?.stop());

  const admin = (method: string, path: string, body?: unknown) => call(stack, method, path, { key: ADMIN_KEY, body });

  it('creates a tenant, issues a key shown once, lists keys without secrets, rotates and revokes them', async () => {
    const created = await admin('POST', '/v1/admin/tenants', { id: 'initech', name: 'Initech' });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ id: 'initech', name: 'Initech', disabled: false, source: 'admin' });
    expect((await admin('POST', '/v1/admin/tenants', { id: 'initech' })).json.error).toMatchObject({ code: 'CONFLICT', message: 'tenant "initech" already exists' });

    const issued = await admin('POST', '/v1/admin/tenants/initech/keys', { name: 'ci' });
    expect(issued.status).toBe(201);
    expect(issued.json).toMatchObject({ id: expect.stringMatching(/^key_/), tenantId: 'initech', name: 'ci', key: expect.stringMatching(/^pfk_[A-Za-z0-9_-]{43}$/), revokedAt: null });
    const key = issued.json.key as string;

    // The key works, as its tenant only.
    const run = await call(stack, 'POST', '/v1/runs', { key, body: inlineRun });
    expect(run.status).toBe(202);
    expect((await call(stack, 'GET', `/v1/runs/${run.json.id}`, { key: TENANT_KEY })).status).toBe(404);
    const listed = await call(stack, 'GET', '/v1/runs', { key });
    expect(listed.json.runs.map((r: { id: string }) => r.id)).toEqual([run.json.id]);

    // Listed without the secret (nor its hash), with its last use.
    const keys = await admin('GET', '/v1/admin/tenants/initech/keys');
    expect(keys.json.keys).toEqual([{ id: issued.json.id, tenantId: 'initech', name: 'ci', createdAt: expect.any(String), lastUsedAt: expect.any(String), revokedAt: null }]);
    expect(keys.text).not.toContain(key);

    // Rotation: a new key, the old one refused at once.
    const rotated = await admin('POST', `/v1/admin/tenants/initech/keys/${issued.json.id}/rotate`);
    expect(rotated.status).toBe(201);
    expect(rotated.json).toMatchObject({ name: 'ci', replaces: issued.json.id, key: expect.stringMatching(/^pfk_/) });
    const refused = await call(stack, 'GET', '/v1/runs', { key });
    expect({ status: refused.status, code: refused.json.error.code, message: refused.json.error.message }).toEqual({
      status: 401,
      code: 'UNAUTHENTICATED',
      message: `API key ${issued.json.id} was revoked: ask your operator for a new one`,
    });
    expect((await call(stack, 'GET', '/v1/runs', { key: rotated.json.key })).status).toBe(200);
    expect((await admin('POST', `/v1/admin/tenants/initech/keys/${issued.json.id}/rotate`)).json.error.code).toBe('CONFLICT');

    // Revocation.
    const revoked = await admin('DELETE', `/v1/admin/tenants/initech/keys/${rotated.json.id}`);
    expect(revoked.json).toMatchObject({ id: rotated.json.id, revokedAt: expect.any(String) });
    expect((await call(stack, 'GET', '/v1/runs', { key: rotated.json.key })).status).toBe(401);

    // Both tenants of PODFLOW_API_KEYS are listed too.
    const tenants = await admin('GET', '/v1/admin/tenants');
    expect(tenants.json.tenants.map((t: { id: string; source: string }) => `${t.id}:${t.source}`)).toEqual(expect.arrayContaining(['acme:environment', 'globex:environment', 'initech:admin']));
  });

  it("sets a tenant's weight and cap, and clears them back to the operator's settings", async () => {
    expect((await admin('PATCH', '/v1/admin/tenants/acme', { weight: 3, maxInFlight: 50 })).json).toMatchObject({ id: 'acme', weight: 3, maxInFlight: 50 });
    expect((await admin('GET', '/v1/admin/tenants/acme')).json).toMatchObject({ weight: 3, maxInFlight: 50, source: 'admin' });
    expect((await admin('PATCH', '/v1/admin/tenants/acme', { weight: null, maxInFlight: null })).json).toMatchObject({ weight: null, maxInFlight: null });
  });

  it('disables a tenant: every key of it, bootstrap ones too, gets 403 until it is enabled again', async () => {
    expect((await admin('PATCH', '/v1/admin/tenants/globex', { disabled: true })).json).toMatchObject({ id: 'globex', disabled: true });
    const refused = await call(stack, 'GET', '/v1/runs', { key: OTHER_KEY });
    expect({ status: refused.status, code: refused.json.error.code }).toEqual({ status: 403, code: 'FORBIDDEN' });
    expect(refused.json.error.message).toContain('tenant "globex" is disabled');
    // Another tenant is not affected.
    expect((await call(stack, 'GET', '/v1/runs', { key: TENANT_KEY })).status).toBe(200);
    await admin('PATCH', '/v1/admin/tenants/globex', { disabled: false });
    expect((await call(stack, 'GET', '/v1/runs', { key: OTHER_KEY })).status).toBe(200);
  });

  it('authorization matrix: no key 401, a wrong or revoked key 401, a tenant key 403 on every admin route; the admin key is no tenant key', async () => {
    await admin('POST', '/v1/admin/tenants', { id: 'matrix' });
    const revokedKey = (await admin('POST', '/v1/admin/tenants/matrix/keys', { name: 'gone' })).json;
    await admin('DELETE', `/v1/admin/tenants/matrix/keys/${revokedKey.id}`);
    const victim = (await admin('POST', '/v1/admin/tenants/initech/keys', { name: 'victim' })).json;
    const answers = [];
    for (const route of adminRoutes(victim.id)) {
      for (const [who, key] of [['no key', null], ['wrong key', 'nope'], ['revoked key', revokedKey.key], ['tenant key', TENANT_KEY], ['other tenant key', OTHER_KEY]] as const) {
        const response = await call(stack, route.method, route.path, { key, body: route.body });
        answers.push({ route: `${route.method} ${route.path}`, who, status: response.status, code: response.json?.error?.code });
      }
    }
    const expected = (who: string) => (who === 'tenant key' || who === 'other tenant key' ? { status: 403, code: 'FORBIDDEN' } : { status: 401, code: 'UNAUTHENTICATED' });
    expect(answers).toEqual(answers.map(({ route, who }) => ({ route, who, ...expected(who) })));
    // Nothing those calls sent took effect: the victim key still works.
    expect((await call(stack, 'GET', '/v1/runs', { key: victim.key })).status).toBe(200);
    // The admin key on tenant routes.
    for (const path of ['/v1/runs', '/v1/workflows/x']) {
      const response = await call(stack, 'GET', path, { key: ADMIN_KEY });
      expect({ status: response.status, message: response.json.error.message }).toEqual({ status: 401, message: expect.stringContaining('the admin key is not a tenant key') });
    }
    // A tenant's key id cannot be revoked through another tenant's path.
    expect((await admin('DELETE', `/v1/admin/tenants/matrix/keys/${victim.id}`)).json.error).toMatchObject({ code: 'NOT_FOUND', message: `tenant "matrix" has no API key ${victim.id}` });
    expect((await call(stack, 'GET', '/v1/runs', { key: victim.key })).status).toBe(200);
  });

  it.each([
    ['POST', '/v1/admin/tenants', { id: 'bad id!' }, 400, /invalid tenant: id: a tenant id is 1-64 letters/],
    ['POST', '/v1/admin/tenants', { id: 'ok', extra: 1 }, 400, /extra/],
    ['PATCH', '/v1/admin/tenants/initech', {}, 400, /give at least one of "name", "disabled", "weight", "maxInFlight"/],
    ['PATCH', '/v1/admin/tenants/initech', { weight: 0 }, 400, /weight/],
    ['PATCH', '/v1/admin/tenants/initech', { maxInFlight: 1.5 }, 400, /maxInFlight/],
    ['PATCH', '/v1/admin/tenants/nobody', { disabled: true }, 404, /no tenant "nobody"/],
    ['POST', '/v1/admin/tenants/nobody/keys', { name: 'x' }, 404, /no tenant "nobody"/],
    ['POST', '/v1/admin/tenants/initech/keys', { name: '' }, 400, /name/],
    ['GET', '/v1/admin/tenants/__proto__/keys', undefined, 404, /no tenant "__proto__"/],
    ['DELETE', '/v1/admin/tenants/initech/keys/not-a-key', undefined, 400, /is not an API key id/],
    ['DELETE', '/v1/admin/tenants/initech/keys/key_doesnotexist', undefined, 404, /has no API key key_doesnotexist/],
  ])('%s %s %j → %i with a message naming the problem', async (method, path, body, status, message) => {
    const response = await admin(method, path, body);
    expect(response.status).toBe(status);
    expect(response.json.error.message).toMatch(message);
  });

  it("counts a tenant's usage, shows it to that tenant alone and to the admin across tenants", async () => {
    await admin('POST', '/v1/admin/tenants', { id: 'metered' });
    const key = (await admin('POST', '/v1/admin/tenants/metered/keys', { name: 'm' })).json.key as string;
    const execute = (code: string) => call(stack, 'POST', '/v1/executions?wait=true', { key, body: { language: 'python', code } });
    expect((await execute('def main(args): return {}')).json.status).toBe('succeeded');
    expect((await execute('def main(args):\n    open("out.txt", "w").write("hello")\n    return {}\n')).json.status).toBe('succeeded');
    expect((await execute('def main(args):\n    raise ValueError("no")\n')).json.status).toBe('failed');
    const usage = await eventually(async () => {
      const answer = await call(stack, 'GET', '/v1/usage', { key });
      return answer.json.total?.executions === 3 ? answer : undefined;
    }, 'the three executions counted', 10_000);
    expect(usage.json.tenantId).toBe('metered');
    expect(usage.json.total).toMatchObject({ executions: 3, succeeded: 2, failed: 1, files: 1, fileBytes: 5 });
    expect(Number.isInteger(usage.json.total.executionMs)).toBe(true);
    expect(usage.json.hours).toHaveLength(1);
    // Another tenant sees its own only.
    const other = await call(stack, 'GET', '/v1/usage', { key: OTHER_KEY });
    expect(other.json.tenantId).toBe('globex');
    expect(other.text).not.toContain('metered');
    // The admin sees every tenant's.
    const all = await admin('GET', '/v1/admin/usage');
    expect(all.json.tenants.find((t: { tenantId: string }) => t.tenantId === 'metered').total.executions).toBe(3);
    // Bad ranges name the parameter.
    expect((await call(stack, 'GET', '/v1/usage?from=yesterday', { key })).json.error).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('from must be an ISO-8601 time') });
  });

  it('ends an open event stream when its key is revoked, with a last frame saying why', async () => {
    await admin('POST', '/v1/admin/tenants', { id: 'streamer' });
    const issued = (await admin('POST', '/v1/admin/tenants/streamer/keys', { name: 's' })).json;
    const run = await call(stack, 'POST', '/v1/runs', { key: issued.key, body: { workflow: { id: 'slow', nodes: [{ id: 'a', language: 'python', code: 'import time\ndef main(args):\n    time.sleep(5)\n    return {}\n' }] } } });
    const response = await fetch(`${stack.url}/v1/runs/${run.json.id}/events`, { headers: { authorization: `Bearer ${issued.key}` } });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    // The stream is live (the run's first events arrive), then the key goes.
    while (!text.includes('event: run')) text += decoder.decode((await reader.read()).value ?? new Uint8Array(), { stream: true });
    const revokedAt = Date.now();
    await admin('DELETE', `/v1/admin/tenants/streamer/keys/${issued.id}`);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    expect(Date.now() - revokedAt).toBeLessThan(5_000);
    expect(text).toContain('event: error');
    expect(text).toContain('the API key of this stream was revoked');
  });

  it('ends a waiting ?wait=true execution with 401 when its key is revoked; the execution goes on', async () => {
    await admin('POST', '/v1/admin/tenants', { id: 'waiter' });
    const issued = (await admin('POST', '/v1/admin/tenants/waiter/keys', { name: 'w' })).json;
    const waiting = call(stack, 'POST', '/v1/executions?wait=true', { key: issued.key, body: { language: 'python', code: 'import time\ndef main(args):\n    time.sleep(4)\n    return {}\n' } });
    // Revoked once the execution is waited for (its run exists).
    let listed: { json: { runs: unknown[] } } = { json: { runs: [] } };
    for (let i = 0; i < 100 && listed.json.runs.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      listed = await call(stack, 'GET', '/v1/runs', { key: issued.key });
    }
    expect(listed.json.runs).toHaveLength(1);
    const revokedAt = Date.now();
    await admin('DELETE', `/v1/admin/tenants/waiter/keys/${issued.id}`);
    const answer = await waiting;
    expect(Date.now() - revokedAt).toBeLessThan(3_000);
    expect(answer.status).toBe(401);
    expect(answer.json.error.message).toContain('was revoked, or tenant "waiter" disabled, while this execution was awaited');
  });

  it("reads no body before the admin check, whatever the path's case", async () => {
    for (const path of ['/v1/admin/tenants', '/V1/ADMIN/tenants', '/v1/Admin/tenants/']) {
      const response = await call(stack, 'POST', path, { key: TENANT_KEY, body: '{broken json' });
      expect({ path, status: response.status, code: response.json?.error?.code }).toEqual({ path, status: 403, code: 'FORBIDDEN' });
    }
  });

  it('two rotations of one key at once give one new key and one 409; two changes of one tenant at once both apply', async () => {
    await admin('POST', '/v1/admin/tenants', { id: 'racy' });
    const issued = (await admin('POST', '/v1/admin/tenants/racy/keys', { name: 'k' })).json;
    const both = await Promise.all([admin('POST', `/v1/admin/tenants/racy/keys/${issued.id}/rotate`), admin('POST', `/v1/admin/tenants/racy/keys/${issued.id}/rotate`)]);
    expect(both.map((r) => r.status).sort()).toEqual([201, 409]);
    const live = (await admin('GET', '/v1/admin/tenants/racy/keys')).json.keys.filter((k: { revokedAt: string | null }) => k.revokedAt === null);
    expect(live).toHaveLength(1);
    await Promise.all([admin('PATCH', '/v1/admin/tenants/racy', { name: 'Racy Inc' }), admin('PATCH', '/v1/admin/tenants/racy', { disabled: true })]);
    expect((await admin('GET', '/v1/admin/tenants/racy')).json).toMatchObject({ name: 'Racy Inc', disabled: true });
  });

  it('a revoked key and a disabled tenant stop working on every coordinator at once (pub/sub, well inside the 2 s cache)', async () => {
    const port = await freePort();
    await stack.startCoordinator({ PORT: String(port) });
    const second = { ...stack, url: `http://127.0.0.1:${port}` };
    await admin('POST', '/v1/admin/tenants', { id: 'multi' });
    const issued = (await admin('POST', '/v1/admin/tenants/multi/keys', { name: 'k' })).json;
    expect((await call(second, 'GET', '/v1/runs', { key: issued.key })).status).toBe(200);
    const revokedAt = Date.now();
    await admin('DELETE', `/v1/admin/tenants/multi/keys/${issued.id}`);
    await eventually(async () => ((await call(second, 'GET', '/v1/runs', { key: issued.key })).status === 401 ? true : undefined), 'the revoked key refused on the second coordinator', 5_000, 10);
    // The second coordinator had the key cached a moment ago: only the change message explains a refusal this soon.
    expect(Date.now() - revokedAt).toBeLessThan(1_500);

    const fresh = (await admin('POST', '/v1/admin/tenants/multi/keys', { name: 'k2' })).json;
    expect((await call(second, 'GET', '/v1/runs', { key: fresh.key })).status).toBe(200);
    const disabledAt = Date.now();
    await admin('PATCH', '/v1/admin/tenants/multi', { disabled: true });
    await eventually(async () => ((await call(second, 'GET', '/v1/runs', { key: fresh.key })).status === 403 ? true : undefined), 'the disabled tenant refused on the second coordinator', 5_000, 10);
    expect(Date.now() - disabledAt).toBeLessThan(1_500);
  });
});

describe('admin API off (no PODFLOW_ADMIN_KEY)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 0 });
  });
  afterAll(() => stack?.stop());

  it('answers 404 naming the variable to set, to any key', async () => {
    for (const key of [null, TENANT_KEY, 'anything']) {
      const response = await call(stack, 'GET', '/v1/admin/tenants', { key });
      expect({ status: response.status, message: response.json.error.message }).toEqual({ status: 404, message: expect.stringContaining('set PODFLOW_ADMIN_KEY or PODFLOW_ADMIN_KEY_FILE') });
    }
  });
});
