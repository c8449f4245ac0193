import type { ExecResult, FinishedReport } from '@podflow/protocol';
import { ResultBatcher } from './result-batcher';

const report = (n: number): FinishedReport => ({ result: { executionId: `r.n${n}.1` } as ExecResult });
const ids = (batch: FinishedReport[]) => batch.map((r) => r.result.executionId);

/** A send the test finishes by hand, to hold a message "in flight". */
function manualSend() {
  const sent: FinishedReport[][] = [];
  const pending: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  const send = (batch: FinishedReport[]) =>
    new Promise<void>((resolve, reject) => {
      sent.push(batch);
      pending.push({ resolve, reject });
    });
  return { sent, pending, send };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('ResultBatcher', () => {
  it('sends a result alone at once when nothing is in flight', async () => {
    const m = manualSend();
    const batcher = new ResultBatcher(m.send, 16);
    const done = batcher.report(report(1));
    expect(m.sent.map(ids)).toEqual([['r.n1.1']]);
    m.pending[0]!.resolve();
    await expect(done).resolves.toBeUndefined();
  });

  it('gathers the results that wait behind a message in flight into the next one, at most maxPerMessage each', async () => {
    const m = manualSend();
    const batcher = new ResultBatcher(m.send, 2);
    const all = [1, 2, 3, 4].map((n) => batcher.report(report(n)));
    expect(m.sent.map(ids)).toEqual([['r.n1.1']]);
    m.pending[0]!.resolve();
    await tick();
    expect(m.sent.map(ids)).toEqual([['r.n1.1'], ['r.n2.1', 'r.n3.1']]);
    m.pending[1]!.resolve();
    await tick();
    expect(m.sent.map(ids)).toEqual([['r.n1.1'], ['r.n2.1', 'r.n3.1'], ['r.n4.1']]);
    m.pending[2]!.resolve();
    await expect(Promise.all(all)).resolves.toEqual([undefined, undefined, undefined, undefined]);
  });

  it('rejects exactly the results of a message that could not be written, and goes on with the rest', async () => {
    const m = manualSend();
    const batcher = new ResultBatcher(m.send, 16);
    const first = batcher.report(report(1));
    const second = batcher.report(report(2));
    m.pending[0]!.reject(new Error('redis down'));
    await expect(first).rejects.toThrow('redis down');
    await tick();
    expect(m.sent.map(ids)).toEqual([['r.n1.1'], ['r.n2.1']]);
    m.pending[1]!.resolve();
    await expect(second).resolves.toBeUndefined();
    // Idle again: the next result goes out on its own.
    void batcher.report(report(3));
    expect(m.sent.map(ids)).toEqual([['r.n1.1'], ['r.n2.1'], ['r.n3.1']]);
  });
});
