import type { RedisClient } from '@podflow/redis';

// Compare-and-act on the lock's owner token, so a builder whose lease expired (and was taken over)
// can neither extend nor delete its successor's lease.
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

/** A held build lease: renewed in the background until released. */
export interface LayerLease {
  /** False once a renewal found the lease gone (expired and taken over, or Redis lost it). */
  readonly held: boolean;
  release(): Promise<void>;
}

/**
 * The cluster-wide single-flight lock of layer builds: one Redis key per layer, `SET NX PX` with
 * an owner token. The holder renews it every third of its TTL; when the holder dies the key
 * expires and the next worker that asks takes the build over.
 */
export class LayerLock {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyPrefix: string,
    private readonly ttlMs: number,
  ) {}

  lockKey(layerKey: string): string {
    return `${this.keyPrefix}layer:lock:${layerKey}`;
  }

  async tryAcquire(layerKey: string, owner: string): Promise<LayerLease | undefined> {
    const key = this.lockKey(layerKey);
    const taken = await this.redis.set(key, owner, 'PX', this.ttlMs, 'NX');
    if (taken !== 'OK') return undefined;
    let held = true;
    const timer = setInterval(() => {
      this.redis.eval(RENEW, 1, key, owner, String(this.ttlMs)).then(
        (renewed) => {
          if (renewed !== 1) held = false;
        },
        () => undefined, // Redis briefly away: the next tick tries again; the TTL covers two misses.
      );
    }, Math.max(100, Math.floor(this.ttlMs / 3)));
    timer.unref();
    return {
      get held() {
        return held;
      },
      release: async () => {
        clearInterval(timer);
        held = false;
        await this.redis.eval(RELEASE, 1, key, owner).catch(() => undefined);
      },
    };
  }

  /** Whether some builder holds the lease now. */
  async isHeld(layerKey: string): Promise<boolean> {
    return (await this.redis.exists(this.lockKey(layerKey))) === 1;
  }
}
