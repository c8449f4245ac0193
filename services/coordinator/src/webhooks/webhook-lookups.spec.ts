import { LookupSlots } from './webhook-lookups';

type Answer = { address: string; family: number }[];

/** A resolver whose `hang*` names never answer and whose other names answer at once; it records every name asked. */
function resolver() {
  const asked: string[] = [];
  const pending: Array<() => void> = [];
  const resolve = (hostname: string) => {
    asked.push(hostname);
    if (hostname.startsWith('hang')) return new Promise<Answer>((done) => pending.push(() => done([{ address: '93.184.216.34', family: 4 }])));
    if (hostname.startsWith('slow')) return new Promise<Answer>((_, fail) => setTimeout(() => fail(Object.assign(new Error('timeout'), { code: 'ETIMEOUT' })), 5));
    return Promise.resolve([{ address: '93.184.216.34', family: 4 }]);
  };
  return { asked, resolve, answerAll: () => pending.splice(0).forEach((answer) => answer()) };
}

const ALL = { all: true } as const;
const settleWithin = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([promise.then(() => 'settled', () => 'settled'), new Promise((done) => setTimeout(() => done('pending'), ms))]);

describe('LookupSlots: DNS lookups of webhook hosts, bounded per tenant and in time', () => {
  it('lets one tenant hold one slot, however many of its names hang: another tenant is looked up at once (a red-team finding: 40 s)', async () => {
    const dns = resolver();
    const slots = new LookupSlots({ slots: 2, perOwner: 1, timeoutMs: 200, failureTtlMs: 1_000, resolve: dns.resolve });
    const attacker = Array.from({ length: 8 }, (_, i) => slots.lookup(`hang${i}.test`, ALL, { owner: 'a' }).catch((error: Error) => error));
    const answer = await slots.lookup('pub.test', ALL, { owner: 'b' });
    expect(answer).toEqual([{ address: '93.184.216.34', family: 4 }]);
    // Only the attacker's first name was ever handed to the resolver; the rest waited their turn and gave up.
    expect(dns.asked).toEqual(['hang0.test', 'pub.test']);
    expect((await Promise.all(attacker)).map((error) => (error as NodeJS.ErrnoException).code)).toEqual(new Array(8).fill('LOOKUP_TIMEOUT'));
    dns.answerAll();
  });

  it('counts the wait in the queue against the time limit, and does not hold a queued name against it later', async () => {
    const dns = resolver();
    const slots = new LookupSlots({ slots: 1, perOwner: 1, timeoutMs: 100, failureTtlMs: 10_000, resolve: dns.resolve });
    void slots.lookup('hang.test', ALL, { owner: 'a' }).catch(() => undefined);
    const queued = slots.lookup('pub.test', ALL, { owner: 'b' });
    const started = Date.now();
    await expect(queued).rejects.toMatchObject({ code: 'LOOKUP_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(1_000);
    dns.answerAll();
    await new Promise((done) => setImmediate(done));
    // It only waited for a slot: asked again, it is looked up.
    await expect(slots.lookup('pub.test', ALL, { owner: 'b' })).resolves.toHaveLength(1);
  });

  it('drops a caller that gives up from the queue: its name is never looked up', async () => {
    const dns = resolver();
    const slots = new LookupSlots({ slots: 1, perOwner: 1, timeoutMs: 5_000, failureTtlMs: 1_000, resolve: dns.resolve });
    void slots.lookup('hang.test', ALL, { owner: 'a' }).catch(() => undefined);
    const controller = new AbortController();
    const abandoned = slots.lookup('gone.test', ALL, { owner: 'b', signal: controller.signal });
    controller.abort(new Error('the delivery timed out'));
    await expect(abandoned).rejects.toThrow('the delivery timed out');
    dns.answerAll();
    await expect(slots.lookup('next.test', ALL, { owner: 'c' })).resolves.toHaveLength(1);
    expect(dns.asked).toEqual(['hang.test', 'next.test']);
  });

  it('does not hold a shared name against everyone when its lookup only started late in its caller\'s wait (review finding: one tenant could black out a chat service\'s host)', async () => {
    const asked: string[] = [];
    const resolve = (hostname: string) => {
      asked.push(hostname);
      // The attacker's own name answers just before the callers' limit; the shared one in 20 ms.
      return new Promise<Answer>((done) => setTimeout(() => done([{ address: '93.184.216.34', family: 4 }]), hostname === 'slow.attacker.test' ? 95 : 20));
    };
    const slots = new LookupSlots({ slots: 2, perOwner: 1, timeoutMs: 100, failureTtlMs: 30_000, resolve });
    const slowOwn = slots.lookup('slow.attacker.test', ALL, { owner: 'attacker' });
    const queued = slots.lookup('hooks.chat.test', ALL, { owner: 'attacker' });
    await slowOwn;
    await expect(queued).rejects.toMatchObject({ code: 'LOOKUP_TIMEOUT' });
    await new Promise((done) => setTimeout(done, 40));
    await expect(slots.lookup('hooks.chat.test', ALL, { owner: 'victim' })).resolves.toHaveLength(1);
    expect(asked).toEqual(['slow.attacker.test', 'hooks.chat.test', 'hooks.chat.test']);
  });

  it('answers a name that just timed out or failed for now with that failure, without a lookup, until it is stale', async () => {
    const dns = resolver();
    let now = 1_000_000;
    const slots = new LookupSlots({ slots: 2, perOwner: 1, timeoutMs: 50, failureTtlMs: 30_000, resolve: dns.resolve, now: () => now });
    await expect(slots.lookup('hang.test', ALL, { owner: 'a' })).rejects.toMatchObject({ code: 'LOOKUP_TIMEOUT' });
    await expect(slots.lookup('slow.test', ALL, { owner: 'b' })).rejects.toMatchObject({ code: 'ETIMEOUT' });
    expect(await settleWithin(slots.lookup('hang.test', ALL, { owner: 'c' }), 20)).toBe('settled');
    await expect(slots.lookup('slow.test', ALL, { owner: 'c' })).rejects.toMatchObject({ code: 'ETIMEOUT' });
    expect(dns.asked).toEqual(['hang.test', 'slow.test']);
    now += 30_001;
    await expect(slots.lookup('slow.test', ALL, { owner: 'c' })).rejects.toMatchObject({ code: 'ETIMEOUT' });
    expect(dns.asked).toEqual(['hang.test', 'slow.test', 'slow.test']);
    dns.answerAll();
  });
});
