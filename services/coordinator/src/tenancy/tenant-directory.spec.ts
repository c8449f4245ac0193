import { PodflowError } from '@podflow/protocol';
import type { RedisClient } from '@podflow/redis';
import type { Logger } from 'pino';
import { hashApiKey, loadCoordinatorConfig } from '../config';
import { TenantDirectory } from './tenant-directory';

// Authentication when Redis is away: a clear 503, never a hang or a 500. (A stand-in client; the
// directory against a real Redis is test/security/admin.security.spec.ts.)
const config = loadCoordinatorConfig({ REDIS_URL: 'redis://127.0.0.1:1', FILE_URL_SECRET: 'x'.repeat(32), STORAGE_DIR: '/tmp/podflow-dir-spec', PODFLOW_API_KEYS: 'boot-key=acme' });
const logger = { error() {}, warn() {}, debug() {} } as unknown as Logger;

function directoryOn(hget: () => Promise<string | null>): TenantDirectory {
  return new TenantDirectory({ hget } as unknown as RedisClient, config, logger);
}

describe('TenantDirectory when Redis does not answer', () => {
  it('answers 503 UNAVAILABLE within about 2 s when Redis is silent', async () => {
    const directory = directoryOn(() => new Promise(() => undefined));
    const started = Date.now();
    const error = await directory.authenticate('pfk_some-issued-key').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PodflowError);
    expect(error).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('retry in a few seconds') });
    expect(Date.now() - started).toBeLessThan(5_000);
  }, 10_000);

  it('answers 503 UNAVAILABLE when Redis refuses, for bootstrap keys too (their tenant may be disabled)', async () => {
    const directory = directoryOn(() => Promise.reject(new Error('ECONNREFUSED')));
    await expect(directory.authenticate('boot-key')).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('ECONNREFUSED') });
  });

  it('treats a corrupt stored record as absent instead of failing every request', async () => {
    const directory = directoryOn(async () => '{not json');
    await expect(directory.authenticate('pfk_unknown')).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(directory.authenticate('boot-key')).resolves.toEqual({ tenantId: 'acme', apiKeyId: hashApiKey('boot-key') });
  });
});
