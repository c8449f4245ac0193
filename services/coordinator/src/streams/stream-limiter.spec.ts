import type { CoordinatorConfig } from '../config';
import { StreamLimiter } from './stream-limiter';

describe('StreamLimiter', () => {
  const limiter = () => new StreamLimiter({ MAX_STREAMS_PER_KEY: 2, MAX_STREAMS: 3 } as CoordinatorConfig);

  it('caps each key, then the process, and frees slots once', () => {
    const limits = limiter();
    const a1 = limits.acquire('a', 'event stream');
    limits.acquire('a', 'event stream');
    expect(() => limits.acquire('a', 'event stream')).toThrow(
      expect.objectContaining({ code: 'TOO_MANY_REQUESTS', message: expect.stringContaining('MAX_STREAMS_PER_KEY=2'), details: { retryAfterSeconds: 5 } }),
    );
    limits.acquire('b', 'wait');
    expect(() => limits.acquire('c', 'wait')).toThrow(expect.objectContaining({ message: expect.stringContaining('MAX_STREAMS=3') }));
    a1();
    a1(); // a second release gives nothing back twice
    expect(() => limits.acquire('c', 'wait')).not.toThrow();
    expect(() => limits.acquire('d', 'wait')).toThrow(expect.objectContaining({ code: 'TOO_MANY_REQUESTS' }));
  });
});
