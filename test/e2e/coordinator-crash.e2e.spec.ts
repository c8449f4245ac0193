import { CrashingCoordinators } from '../support/crashing-coordinators';
import { describeRun, startStack, type Stack } from '../support/stack';

// Issue 11: kill -9 a coordinator between writing a batch and carrying out its commands, again
// and again, under load: every run still finishes, each node executed once. Two coordinators
// kill themselves right after their Nth commit (PODFLOW_FAULT_KILL_AFTER_COMMITS) and are
// restarted at once; the stack's first coordinator takes the API and never dies. The noop
// driver keeps the load on orchestration.
const RUNS = 40;
const LEAVES = 15;
const KILLS_AT_LEAST = 6;

describe('coordinator crashes (issue 11)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      workers: 1,
      workerEnv: { SANDBOX_DRIVER: 'noop', WORKER_CONCURRENCY: '16' },
      // Short leases and sweeps: a dead coordinator's runs are taken over within seconds.
      env: { RUN_LEASE_MS: '1500', OUTBOX_SWEEP_MS: '300' },
    });
  });
  afterAll(() => stack?.stop());

  it('finishes every run when coordinators die right after committing a batch, before carrying out its commands', async () => {
    const crashing = new CrashingCoordinators(stack, 2, (kills, slot) => 1 + ((kills + slot) % 3));
    try {
      const workflow = {
        id: 'crash-fan',
        nodes: [{ id: 'root', language: 'python', code: 'def main(args): return {}' }, ...Array.from({ length: LEAVES }, (_, i) => ({ id: `leaf${i}`, language: 'python', code: 'def main(args): return {}' })), { id: 'join', language: 'python', code: 'def main(args): return {}' }],
        edges: [...Array.from({ length: LEAVES }, (_, i) => ({ from: 'root', to: `leaf${i}` })), ...Array.from({ length: LEAVES }, (_, i) => ({ from: `leaf${i}`, to: 'join' }))],
      };
      const ids: string[] = [];
      // At least RUNS, and on until the crashing coordinators have died KILLS_AT_LEAST times: how
      // many commits fit in a fixed batch depends on how fast a coordinator starts on this machine.
      const submitUntil = Date.now() + 90_000;
      while (ids.length < RUNS || (crashing.kills < KILLS_AT_LEAST && Date.now() < submitUntil)) {
        ids.push((await stack.client.submitRun({ workflow })).id);
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
      const runs = await Promise.all(
        ids.map((id) =>
          stack.client.waitForRun(id, 200, 120_000).catch(async (error: Error) => {
            const state = await describeRun(stack, id).catch((failed: Error) => `(could not describe it: ${failed.message})`);
            throw new Error(`${error.message}\n${state}\n${stack.logs().slice(-6000)}`);
          }),
        ),
      );
      expect(crashing.unexpectedExit).toBeUndefined();
      expect(crashing.kills).toBeGreaterThanOrEqual(KILLS_AT_LEAST);
      for (const run of runs) {
        expect({ id: run.id, status: run.status, error: run.error }).toEqual({ id: run.id, status: 'succeeded', error: undefined });
        expect(Object.values(run.nodes).map((node) => node.attempts)).toEqual(Array(LEAVES + 2).fill(1));
      }
    } finally {
      await crashing.stop();
    }
  }, 240_000);
});
