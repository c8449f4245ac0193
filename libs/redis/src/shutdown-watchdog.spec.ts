import { startShutdownWatchdog } from './shutdown-watchdog';

describe('startShutdownWatchdog', () => {
  const until = async (condition: () => boolean, timeoutMs = 2_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  };

  it('calls onStuck after consecutive checks without an answer', async () => {
    const stuck: number[] = [];
    startShutdownWatchdog({ ping: () => Promise.reject(new Error('connection closed')), onStuck: (n) => stuck.push(n), intervalMs: 10, failuresToExit: 3 });
    await until(() => stuck.length > 0);
    expect(stuck).toEqual([3]);
  });

  it('counts a ping that never settles as no answer', async () => {
    const stuck: number[] = [];
    startShutdownWatchdog({ ping: () => new Promise(() => undefined), onStuck: (n) => stuck.push(n), intervalMs: 10, pingTimeoutMs: 20, failuresToExit: 2 });
    await until(() => stuck.length > 0);
    expect(stuck).toEqual([2]);
  });

  it('lets a long drain go on while Redis answers, and starts counting again after an answer', async () => {
    const answers = [false, true, false, true, false, true, false, true];
    let pings = 0;
    const stuck: number[] = [];
    const stop = startShutdownWatchdog({
      ping: () => (answers[pings++] ?? true ? Promise.resolve('PONG') : Promise.reject(new Error('down'))),
      onStuck: (n) => stuck.push(n),
      intervalMs: 5,
      failuresToExit: 2,
    });
    await until(() => pings >= answers.length + 2);
    stop();
    expect({ stuck, pinged: pings >= answers.length }).toEqual({ stuck: [], pinged: true });
  });

  it('does nothing once stopped (the process closed in time)', async () => {
    const stuck: number[] = [];
    const stop = startShutdownWatchdog({ ping: () => Promise.reject(new Error('down')), onStuck: (n) => stuck.push(n), intervalMs: 10, failuresToExit: 1 });
    stop();
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(stuck).toEqual([]);
  });
});
