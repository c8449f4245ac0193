import type { ExecJob } from '@podflow/protocol';
import { FifoGlobalCap, type AdmissionRequest } from './admission';

const request = (n: number): AdmissionRequest => ({ job: { executionId: `r.n${n}.1` } as ExecJob, delayMs: 0 });
const requests = (count: number) => Array.from({ length: count }, (_, i) => request(i));

describe('FifoGlobalCap', () => {
  const policy = new FifoGlobalCap(10);

  it('admits everything under the cap, and only what fits at it', () => {
    expect(policy.admit(requests(4), { inFlight: 0, othersWaiting: false }, false)).toBe(4);
    expect(policy.admit(requests(4), { inFlight: 8, othersWaiting: false }, false)).toBe(2);
    expect(policy.admit(requests(4), { inFlight: 10, othersWaiting: false }, false)).toBe(0);
    expect(policy.admit(requests(4), { inFlight: 12, othersWaiting: false }, false)).toBe(0);
  });

  it('queues new work behind held runs (first come, first served); held runs take their turn when released', () => {
    expect(policy.admit(requests(4), { inFlight: 0, othersWaiting: true }, false)).toBe(0);
    expect(policy.admit(requests(4), { inFlight: 0, othersWaiting: true }, true)).toBe(4);
  });
});
