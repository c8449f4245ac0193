import type { ExecResult } from '@podflow/protocol';
import { eventsOf } from './results.processor';

const result = { executionId: 'r1.a.1', runId: 'r1', nodeId: 'a', attempt: 1, status: 'succeeded', output: {} } as unknown as ExecResult;

describe('eventsOf', () => {
  it('stamps a start with the coordinator\'s receive time, not the worker\'s clock', () => {
    const message = { kind: 'started', runId: 'r1', nodeId: 'a', attempt: 1, executionId: 'r1.a.1', workerId: 'w', at: 5 } as const;
    expect(eventsOf(message, 100)).toEqual(new Map([['r1', [{ type: 'node_started', nodeId: 'a', executionId: 'r1.a.1', at: 100 }]]]));
  });

  it('a result whose start was reported is one event', () => {
    expect(eventsOf({ kind: 'finished', result }, 100)).toEqual(new Map([['r1', [{ type: 'node_finished', result, at: 100 }]]]));
  });

  it('a result that carries its start (a quick execution) records the start first', () => {
    expect(eventsOf({ kind: 'finished', result, startReported: false }, 100)).toEqual(
      new Map([
        [
          'r1',
          [
            { type: 'node_started', nodeId: 'a', executionId: 'r1.a.1', at: 100 },
            { type: 'node_finished', result, at: 100 },
          ],
        ],
      ]),
    );
  });

  it('a batch is grouped by run, in message order within each run', () => {
    const b = { ...result, executionId: 'r1.b.1', nodeId: 'b' } as ExecResult;
    const other = { ...result, executionId: 'r2.a.1', runId: 'r2' } as ExecResult;
    const byRun = eventsOf({ kind: 'finished_batch', results: [{ result }, { result: other, startReported: false }, { result: b }] }, 100);
    expect([...byRun.keys()]).toEqual(['r1', 'r2']);
    expect(byRun.get('r1')).toEqual([
      { type: 'node_finished', result, at: 100 },
      { type: 'node_finished', result: b, at: 100 },
    ]);
    expect(byRun.get('r2')!.map((e) => e.type)).toEqual(['node_started', 'node_finished']);
  });

  it.each([
    ['an unknown kind', { kind: 'finished_soon', result }],
    ['a result naming no run', { kind: 'finished', result: { ...result, runId: '' } }],
    ['a batch entry naming no run', { kind: 'finished_batch', results: [{ result }, { result: { ...result, runId: undefined } }] }],
  ])('refuses %s (the message is dropped with an error in the log)', (_name, message) => {
    expect(() => eventsOf(message as never, 100)).toThrow(TypeError);
  });

  it('a run timeout keeps its deadline', () => {
    expect(eventsOf({ kind: 'run_timeout', runId: 'r1', at: 42 }, 100)).toEqual(new Map([['r1', [{ type: 'run_timeout', at: 42 }]]]));
  });
});
