import { createHmac } from 'node:crypto';
import { LocalDiskStore, MAX_URL_CLOCK_SKEW_SECONDS } from './local-disk-store';

const SECRET = 'a-secret-of-16-chars';
const TTL = 600;

/** Signs like the store does, so a test can forge an expiry the store itself would never issue. */
function forge(key: string, expires: number): string {
  return createHmac('sha256', SECRET).update(`${key}\n${expires}`).digest('hex');
}

describe('LocalDiskStore.verify upper bound', () => {
  const store = new LocalDiskStore({ root: '/nonexistent', publicBaseUrl: 'http://localhost:8080', secret: SECRET, defaultTtlSeconds: TTL });
  const now = 1_700_000_000_000;
  const nowSeconds = now / 1000;

  it('accepts a URL signed for the configured TTL, allowing for clock skew', () => {
    const inTtl = nowSeconds + TTL;
    expect(store.verify('k', String(inTtl), forge('k', inTtl), now)).toBeUndefined();
    const skewed = nowSeconds + TTL + MAX_URL_CLOCK_SKEW_SECONDS;
    expect(store.verify('k', String(skewed), forge('k', skewed), now)).toBeUndefined();
  });

  it('refuses a correctly signed URL that expires further ahead than the TTL allows', () => {
    const tooLate = nowSeconds + TTL + MAX_URL_CLOCK_SKEW_SECONDS + 1;
    expect(store.verify('k', String(tooLate), forge('k', tooLate), now)).toMatch(/further ahead than FILE_URL_TTL_SECONDS \(600s\)/);
    const years = nowSeconds + 10 * 365 * 24 * 3600;
    expect(store.verify('k', String(years), forge('k', years), now)).toMatch(/further ahead/);
  });

  it('accepts what sign() issues with the default TTL', async () => {
    const { url } = await store.sign('tenants/t/x.txt');
    const parsed = new URL(url);
    expect(store.verify('tenants/t/x.txt', parsed.searchParams.get('expires') ?? undefined, parsed.searchParams.get('signature') ?? undefined)).toBeUndefined();
  });
});
