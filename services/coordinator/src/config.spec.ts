import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashApiKey, loadCoordinatorConfig } from './config';

// The key settings of the coordinator's configuration: what boots, and the message of what does not.
const base = { REDIS_URL: 'redis://127.0.0.1:6379', FILE_URL_SECRET: 'x'.repeat(32), STORAGE_DIR: '/tmp/podflow-config-spec' };
const ADMIN = 'a'.repeat(32);

describe('coordinator configuration: keys', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'podflow-config-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps only hashes: of bootstrap keys and of the admin key', () => {
    const config = loadCoordinatorConfig({ ...base, PODFLOW_API_KEYS: 'k1=acme', PODFLOW_ADMIN_KEY: ADMIN });
    expect([...config.PODFLOW_API_KEYS]).toEqual([[hashApiKey('k1'), 'acme']]);
    expect(config.adminKeyHash).toBe(hashApiKey(ADMIN));
    expect(JSON.stringify(config)).not.toContain(ADMIN);
    expect('PODFLOW_ADMIN_KEY' in config).toBe(false);
  });

  it('boots with an admin key and no bootstrap keys (keys issued through /v1/admin), not with neither', () => {
    expect(loadCoordinatorConfig({ ...base, PODFLOW_ADMIN_KEY: ADMIN }).PODFLOW_API_KEYS.size).toBe(0);
    expect(() => loadCoordinatorConfig(base)).toThrow(/PODFLOW_API_KEYS is required: set it to key=tenant\[,key=tenant\.\.\.\], or set PODFLOW_ADMIN_KEY/);
  });

  it('reads the admin key from a file (trimmed), and refuses both sources, a short key or an unreadable file', () => {
    const file = join(dir, 'admin-key');
    writeFileSync(file, `${ADMIN}\n`);
    expect(loadCoordinatorConfig({ ...base, PODFLOW_ADMIN_KEY_FILE: file }).adminKeyHash).toBe(hashApiKey(ADMIN));
    expect(() => loadCoordinatorConfig({ ...base, PODFLOW_ADMIN_KEY: ADMIN, PODFLOW_ADMIN_KEY_FILE: file })).toThrow(/set PODFLOW_ADMIN_KEY or PODFLOW_ADMIN_KEY_FILE, not both/);
    expect(() => loadCoordinatorConfig({ ...base, PODFLOW_ADMIN_KEY: 'short' })).toThrow(/PODFLOW_ADMIN_KEY must be at least 24 characters/);
    expect(() => loadCoordinatorConfig({ ...base, PODFLOW_ADMIN_KEY_FILE: join(dir, 'missing') })).toThrow(/PODFLOW_ADMIN_KEY_FILE: cannot read/);
    writeFileSync(file, 'short\n');
    expect(() => loadCoordinatorConfig({ ...base, PODFLOW_ADMIN_KEY_FILE: file })).toThrow(/must be at least 24 characters/);
  });

  it('names a bad fair dispatch setting at boot', () => {
    expect(() => loadCoordinatorConfig({ ...base, PODFLOW_API_KEYS: 'k=t', TENANT_WEIGHTS: 'acme=0' })).toThrow(/TENANT_WEIGHTS entry "acme=0": weight must be a number of at least 0.01/);
    expect(() => loadCoordinatorConfig({ ...base, PODFLOW_API_KEYS: 'k=t', FAIR_DISPATCH: 'maybe' })).toThrow(/FAIR_DISPATCH is true or false/);
    expect(loadCoordinatorConfig({ ...base, PODFLOW_API_KEYS: 'k=t', FAIR_DISPATCH: 'false' }).FAIR_DISPATCH).toBe(false);
  });
});
