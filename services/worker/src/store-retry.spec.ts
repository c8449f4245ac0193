import { PodflowError } from '@podflow/protocol';
import { StoreRetriesExhaustedError, withStoreRetries } from './store-retry';

const unreachable = () => new PodflowError('INTERNAL', 'put failed: cannot reach bucket "b" at http://127.0.0.1:1');

describe('withStoreRetries', () => {
  it('tries again after a store failure, waiting twice as long each time, until it works', async () => {
    const waits: number[] = [];
    let calls = 0;
    const value = await withStoreRetries(
      async () => {
        calls++;
        if (calls < 3) throw unreachable();
        return 'stored';
      },
      { attempts: 4, delayMs: 100 },
      async (ms) => waits.push(ms),
    );
    expect(value).toBe('stored');
    expect(calls).toBe(3);
    expect(waits).toEqual([100, 200]);
  });

  it('gives up after the attempts, carrying the last error', async () => {
    let calls = 0;
    const tried = withStoreRetries(
      async () => {
        calls++;
        throw unreachable();
      },
      { attempts: 3, delayMs: 0 },
      async () => undefined,
    );
    await expect(tried).rejects.toBeInstanceOf(StoreRetriesExhaustedError);
    await expect(tried).rejects.toMatchObject({ attempts: 3, cause: expect.objectContaining({ code: 'INTERNAL' }), message: expect.stringMatching(/^3 tries failed, the last with: put failed: cannot reach/) });
    expect(calls).toBe(3);
  });

  it('does not try again when the store refuses the object itself', async () => {
    let calls = 0;
    const refused = Object.assign(new Error('ENAMETOOLONG: name too long'), { code: 'ENAMETOOLONG' });
    await expect(
      withStoreRetries(
        async () => {
          calls++;
          throw refused;
        },
        { attempts: 5, delayMs: 0 },
        async () => undefined,
      ),
    ).rejects.toBe(refused);
    expect(calls).toBe(1);
  });
});
