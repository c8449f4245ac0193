import { PRIORITY_LIMIT, dispatchOf, dispatchPriority, releaseOrder, tenantNumbersEnv } from './dispatch-policy';

describe('dispatchPriority', () => {
  it('gives `weight` executions per level from the batch start', () => {
    expect([0, 1, 2, 3].map((i) => dispatchPriority(10, i, 1, 0))).toEqual([11, 12, 13, 14]);
    expect([0, 1, 2, 3, 4].map((i) => dispatchPriority(10, i, 2, 0))).toEqual([11, 11, 12, 12, 13]);
    expect([0, 1].map((i) => dispatchPriority(10, i, 0.5, 0))).toEqual([12, 14]);
  });

  it('continues a weight-2 tenant mid-level from a fractional start (its tag after an odd batch)', () => {
    // Batch 1 of one execution ends at 10.5; batch 2 starts there and fills level 11 first.
    expect(dispatchPriority(10, 0, 2, 0)).toBe(11);
    expect([0, 1].map((i) => dispatchPriority(10.5, i, 2, 0))).toEqual([11, 12]);
  });

  it('shifts levels into BullMQ range, never below 1 or above its limit', () => {
    expect(dispatchPriority(5_000_000, 0, 1, 4_999_990)).toBe(11);
    expect(dispatchPriority(0, 0, 1, 100)).toBe(1);
    expect(dispatchPriority(10 * PRIORITY_LIMIT, 0, 1, 0)).toBe(PRIORITY_LIMIT);
  });

  it('interleaves two tenants that flood at once 2:1 with weights 2 and 1', () => {
    const a = Array.from({ length: 6 }, (_, i) => ({ tenant: 'a', level: dispatchPriority(0, i, 2, 0) }));
    const c = Array.from({ length: 6 }, (_, i) => ({ tenant: 'c', level: dispatchPriority(0, i, 1, 0) }));
    // BullMQ: lowest level first, then insertion order.
    const served = [...a, ...c].map((job, order) => ({ ...job, order })).sort((x, y) => x.level - y.level || x.order - y.order);
    expect(served.slice(0, 9).map((job) => job.tenant).join('')).toBe('aacaacaac');
  });
});

describe('releaseOrder', () => {
  it('puts the tenant using least of its share first, ties by id', () => {
    expect(releaseOrder([{ id: 'a', inFlight: 10, weight: 1 }, { id: 'b', inFlight: 4, weight: 1 }, { id: 'c', inFlight: 10, weight: 4 }])).toEqual(['c', 'b', 'a']);
    expect(releaseOrder([{ id: 'z', inFlight: 0, weight: 1 }, { id: 'y', inFlight: 0, weight: 2 }])).toEqual(['y', 'z']);
  });
});

describe('tenant settings', () => {
  const weights = tenantNumbersEnv('TENANT_WEIGHTS', { min: 0.01, integer: false, what: 'weight' });
  const caps = tenantNumbersEnv('TENANT_MAX_IN_FLIGHT_BY_TENANT', { min: 1, integer: true, what: 'count' });

  it('parses tenant=number lists, and an absent variable as none', () => {
    expect(weights.parse('acme=2, globex=0.5')).toEqual(new Map([['acme', 2], ['globex', 0.5]]));
    expect(weights.parse(undefined)).toEqual(new Map());
    expect(caps.parse('acme=50')).toEqual(new Map([['acme', 50]]));
  });

  it.each([
    ['acme', /"acme" is not tenant=weight/],
    ['acme=', /"acme=" is not tenant=weight/],
    ['ac me=1', /"ac me=1" is not tenant=weight/],
    ['acme=0', /weight must be a number of at least 0.01/],
    ['acme=x', /weight must be a number of at least 0.01/],
    ['acme=1,acme=2', /names tenant "acme" twice/],
  ])('refuses %j with a message that names the entry', (raw, message) => {
    const parsed = weights.safeParse(raw);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => i.message).join('\n')).toMatch(message);
  });

  it('refuses a fractional cap', () => {
    expect(caps.safeParse('acme=1.5').error?.issues[0]?.message).toMatch(/count must be a whole number of at least 1/);
  });

  it('looks a tenant up with the operator defaults behind', () => {
    const policy = { fair: true, defaults: { weight: 1, maxInFlight: 100 }, weights: new Map([['acme', 3]]), maxInFlight: new Map([['globex', 5]]) };
    expect(dispatchOf(policy, 'acme')).toEqual({ weight: 3, maxInFlight: 100 });
    expect(dispatchOf(policy, 'globex')).toEqual({ weight: 1, maxInFlight: 5 });
    expect(dispatchOf(policy, '__proto__')).toEqual({ weight: 1, maxInFlight: 100 });
  });
});
