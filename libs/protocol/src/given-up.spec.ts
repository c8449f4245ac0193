import type { ExecJob } from './exec';
import { givenUpOf, givenUpResult } from './given-up';

const job: ExecJob = {
  executionId: 'r1.a.1',
  tenantId: 't1',
  runId: 'r1',
  nodeId: 'a',
  attempt: 1,
  language: 'python',
  code: 'def main(args): return {}',
  args: {},
  timeoutMs: 1000,
  dependencies: [],
  network: false,
  enqueuedAt: 0,
};

describe('givenUpResult', () => {
  it('is a SANDBOX_LOST result for the execution, naming the reason and the attempts', () => {
    const result = givenUpResult(job, { reason: 'job stalled more than allowable limit', attemptsMade: 0, attemptsStarted: 4, startedAt: 50 }, 'w2', 90);
    expect(result).toMatchObject({
      executionId: 'r1.a.1',
      runId: 'r1',
      nodeId: 'a',
      attempt: 1,
      status: 'failed',
      workerId: 'w2',
      error: { code: 'SANDBOX_LOST', nodeId: 'a', details: { attemptsMade: 0, attemptsStarted: 4, reason: 'job stalled more than allowable limit' } },
      timings: { startedAt: 50, finishedAt: 90, queueWaitMs: 50, executionMs: 0 },
    });
    expect(result.error?.message).toMatch(/^the queue gave up on execution r1\.a\.1 after 4 start\(s\) and 0 failed attempt\(s\): job stalled more than allowable limit \(its worker died/);
  });
});

describe('givenUpOf', () => {
  it('reads what BullMQ recorded of the job; a job never started has no start time', () => {
    expect(givenUpOf({ attemptsMade: 2, attemptsStarted: 3, processedOn: 77 }, 'boom')).toEqual({ reason: 'boom', attemptsMade: 2, attemptsStarted: 3, startedAt: 77 });
    expect(givenUpOf({ attemptsMade: 1 }, 'boom')).toEqual({ reason: 'boom', attemptsMade: 1, attemptsStarted: 1 });
  });
});
