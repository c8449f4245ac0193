import type { ExecResult } from '@podflow/protocol';
import { eventsOf } from './results.processor';

const result = { executionId: 'r1.a.1', runId: 'r1', nodeId: 'a', attempt: 1, status: 'succeeded', output: {} } as unknown as ExecResult;

describe('eventsOf', () => {
  it('stamps a start with the coordinator\'s receive time, not the worker\'s clock', () => {
    const message = { kind: 'started', runId: 'r1', nodeId: 'a', attempt: 1, executionId: 'r1.a.1', workerId: 'w', at: 5 } as const;
    expect(eventsOf(message, 100)).toEqual({ runId: 'r1', events: [{ type: 'node_started', nodeId: 'a', executionId: 'r1.a.1', at: 100 }] });
  });

  it('a result whose start was reported is one event', () => {
    expect(eventsOf({ kind: 'finished', result }, 100)).toEqual({ runId: 'r1', events: [{ type: 'node_finished', result, at: 100 }] });
  });

  it('a result that carries its start (a quick execution) records the start first', () => {
    expect(eventsOf({ kind: 'finished', result, startReported: false }, 100)).toEqual({
      runId: 'r1',
      events: [
        { type: 'node_started', nodeId: 'a', executionId: 'r1.a.1', at: 100 },
        { type: 'node_finished', result, at: 100 },
      ],
    });
  });

  it('a run timeout keeps its deadline', () => {
    expect(eventsOf({ kind: 'run_timeout', runId: 'r1', at: 42 }, 100)).toEqual({ runId: 'r1', events: [{ type: 'run_timeout', at: 42 }] });
  });
});
