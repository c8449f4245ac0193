import { join } from 'node:path';
import { cancelsOf, enqueuesOf, loadFixtures, runFixture, type Fixture, type FixtureStep } from './testing/fixture-runner';
import type { EngineCommand, RunState } from './types';

const fixtures = loadFixtures(join(__dirname, '..', 'fixtures'));

function isScripted(step: unknown): step is FixtureStep {
  return !(typeof step === 'object' && step !== null && 'start_run' in step);
}

function nodeIdsOf(commands: EngineCommand[]): string[] {
  return enqueuesOf(commands).map((command) => command.job.nodeId);
}

describe('engine fixtures', () => {
  it('finds the fixtures', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(15);
  });

  it.each(fixtures.map((fixture): [string, Fixture] => [fixture.file, fixture]))('%s', async (_file, fixture) => {
    const trace = await runFixture(fixture);
    const all = trace.flatMap((entry) => entry.commands);

    // Starting schedules the run timeout at start + workflow timeout.
    const [first] = trace;
    expect(first.commands[0]).toEqual({ type: 'schedule_run_timeout', at: first.after.workflow.timeoutMs });

    trace.forEach((entry, index) => {
      // transition never mutates its input.
      expect(entry.input).toEqual(entry.before);
      const step = entry.step;
      if (!isScripted(step)) return;
      const label = { step: index, ...step };
      if (step.replay_last) {
        expect({ label, commands: entry.commands }).toEqual({ label, commands: [] });
        expect(entry.after).toEqual(entry.before);
      }
      if (step.expect_commands !== undefined) expect({ label, commands: entry.commands.length }).toEqual({ label, commands: step.expect_commands });
      if (step.expect_enqueued) expect({ label, enqueued: nodeIdsOf(entry.commands) }).toEqual({ label, enqueued: step.expect_enqueued });
      if (step.expect_canceled) {
        expect({ label, canceled: cancelsOf(entry.commands).map((c) => c.nodeId) }).toEqual({ label, canceled: step.expect_canceled });
      }
      if (step.expect_status) expect({ label, status: entry.after.status }).toEqual({ label, status: step.expect_status });
    });

    // Invariants over the whole run.
    const executionIds = enqueuesOf(all).map((command) => command.job.executionId);
    expect(new Set(executionIds).size).toBe(executionIds.length);
    const final: RunState = trace[trace.length - 1].after;
    if (['succeeded', 'failed', 'canceled'].includes(final.status)) {
      expect(Object.values(final.nodes).filter((node) => ['pending', 'queued', 'running'].includes(node.status))).toEqual([]);
      const runEvents = all.flatMap((command) => (command.type === 'emit' && command.event.type === 'run' ? [command.event.status] : []));
      expect(runEvents).toEqual(['running', final.status]);
      expect(final.finishedAt).toBeDefined();
    }

    const { expect: want } = fixture;
    if (want.status) expect(final.status).toBe(want.status);
    if (want.error) expect(final.error).toMatchObject(want.error);
    if (want.outputs) expect(final.outputs).toEqual(want.outputs);
    if (want.nodes) expect(final.nodes).toMatchObject(want.nodes);
    if (want.enqueued) expect(nodeIdsOf(all)).toEqual(want.enqueued);
    if (want.canceled) expect(cancelsOf(all).map((command) => command.nodeId)).toEqual(want.canceled);
    for (const [nodeId, delays] of Object.entries(want.delays ?? {})) {
      expect({ nodeId, delays: enqueuesOf(all).filter((c) => c.job.nodeId === nodeId).map((c) => c.delayMs) }).toEqual({ nodeId, delays });
    }
    for (const [nodeId, args] of Object.entries(want.args ?? {})) {
      const jobs = enqueuesOf(all).filter((command) => command.job.nodeId === nodeId);
      expect({ nodeId, args: jobs[jobs.length - 1]?.job.args }).toEqual({ nodeId, args });
    }
  });
});
