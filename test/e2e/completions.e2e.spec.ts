import { CompletionConsumer, QueueSubmitter, type RunCompletion } from '@podflow/client';
import { QUEUE_NAMES } from '@podflow/protocol';
import { Queue } from 'bullmq';
import { CrashingCoordinators } from '../support/crashing-coordinators';
import { startStack, type Stack } from '../support/stack';

// Issue 13, queue integration: a service submits on `submissions` naming a reply target and
// receives each run's completion there, at least once, through kill -9 of coordinators.
const workflow = {
  id: 'reply',
  nodes: [{ id: 'a', language: 'python', code: 'def main(args): return {}' }],
  output: '{ "i": inputs.i, "a": nodes.a.output }',
};

/**
 * What became of submissions whose completion never came: the job, its run, the run's node,
 * inbox and outbox, the node's exec job, and any result message that failed for good (a stalled
 * results job past BullMQ's maxStalledCount was how a result got lost before).
 */
async function describeMissing(stack: Stack, missing: Array<{ i: number; jobId: string }>): Promise<unknown[]> {
  const queue = (name: string) => new Queue(name, { connection: stack.redis, prefix: stack.bullPrefix(name) });
  const [submissions, exec, results] = [queue(QUEUE_NAMES.submissions), queue(QUEUE_NAMES.exec), queue(QUEUE_NAMES.results)];
  try {
    const failedResults = missing.length > 0 ? await results.getFailed() : [];
    return await Promise.all(
      missing.map(async ({ i, jobId }) => {
        const job = await submissions.getJob(jobId);
        const runId = (job?.returnvalue as { runId?: string } | undefined)?.runId;
        if (!runId) return { i, jobId, state: job ? await job.getState() : 'gone', failedReason: job?.failedReason };
        const [rec, notify] = await stack.redis.hmget(stack.keys.run(runId), 'rec', 'notify');
        const node = JSON.parse((await stack.redis.hget(stack.keys.nodes(runId), 'a')) ?? 'null') as { status?: string; executionId?: string } | null;
        const execJob = node?.executionId ? await exec.getJob(node.executionId) : undefined;
        return {
          i,
          jobId,
          state: await job!.getState(),
          runId,
          status: rec ? JSON.parse(rec).status : undefined,
          notify,
          node: node?.status,
          exec: execJob ? await execJob.getState() : 'gone',
          inbox: await stack.redis.xlen(stack.keys.inbox(runId)),
          outbox: await stack.redis.xrange(stack.keys.outbox(runId), '-', '+'),
          failedResults: failedResults.filter((r) => JSON.stringify(r.data).includes(runId)).map((r) => r.failedReason),
        };
      }),
    );
  } finally {
    await Promise.all([submissions.close(), exec.close(), results.close()]);
  }
}

describe('completion channel (issue 13)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      workers: 1,
      workerEnv: { SANDBOX_DRIVER: 'noop', WORKER_CONCURRENCY: '32' },
      // Short leases and sweeps: a dead coordinator's runs are taken over within seconds.
      env: { RUN_LEASE_MS: '1500', OUTBOX_SWEEP_MS: '300' },
    });
  });
  afterAll(() => stack?.stop());

  it('delivers 500 completions or more to the reply target while coordinators are killed -9 right after committing', async () => {
    const RUNS = 500;
    const KILLS_AT_LEAST = 3;
    const received = new Map<string, RunCompletion[]>();
    const consumer = new CompletionConsumer({
      redis: stack.redis,
      prefix: stack.prefix,
      replyTo: 'billing',
      claimIdleMs: 2_000,
      handler: async (completion) => {
        const list = received.get(completion.correlationId!) ?? [];
        list.push(completion);
        received.set(completion.correlationId!, list);
      },
    });
    await consumer.start();
    const submitter = new QueueSubmitter(stack.redis, { prefix: stack.prefix });
    // Two extra coordinators kill themselves right after their Nth commit (before carrying out
    // its commands, `run_finished` included) and come back at once.
    const crashing = new CrashingCoordinators(stack, 2, (kills, slot) => 2 + ((kills + slot) % 5));
    const jobs: string[] = [];
    try {
      // At least RUNS, and on until the crashing coordinators have died KILLS_AT_LEAST times: how
      // many commits fit in a fixed batch depends on how fast a coordinator starts on this machine
      // (CI once saw 500 runs finish with only 2 kills).
      const submitUntil = Date.now() + 90_000;
      for (let i = 0; i < RUNS || (crashing.kills < KILLS_AT_LEAST && Date.now() < submitUntil); i++) {
        jobs[i] = await submitter.submit({ tenantId: 'acme', workflow, inputs: { i }, replyTo: 'billing', correlationId: `c${i}` });
        if (i % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const deadline = Date.now() + 150_000;
      while (received.size < jobs.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
      expect(crashing.unexpectedExit).toBeUndefined();
      expect(crashing.kills).toBeGreaterThanOrEqual(KILLS_AT_LEAST);
      const missing = jobs.flatMap((jobId, i) => (received.has(`c${i}`) ? [] : [{ i, jobId }]));
      expect(await describeMissing(stack, missing)).toEqual([]);
      expect(received.size).toBe(jobs.length);
      for (let i = 0; i < jobs.length; i++) {
        const list = received.get(`c${i}`)!;
        // Duplicates only ever repeat the same run.
        expect(new Set(list.map((c) => c.runId)).size).toBe(1);
        expect(list[0]).toMatchObject({ status: 'succeeded', tenantId: 'acme', workflowId: 'reply', outputs: { i, a: {} }, correlationId: `c${i}` });
        expect(list[0]!.submissionId).toEqual(expect.any(String));
      }
    } finally {
      await crashing.stop();
      await consumer.close();
      await submitter.close();
    }
  }, 240_000);

  it('submitAndWait resolves to the completion: outputs of a run, the reason of a rejected submission', async () => {
    const submitter = new QueueSubmitter(stack.redis, { prefix: stack.prefix });
    try {
      const [done, rejected] = await Promise.all([
        submitter.submitAndWait({ tenantId: 'acme', workflow, inputs: { i: 7 } }, { timeoutMs: 60_000 }),
        submitter.submitAndWait({ tenantId: 'acme', workflow: { id: 'bad', nodes: [] }, inputs: {} }, { timeoutMs: 60_000 }),
      ]);
      expect(done).toMatchObject({ status: 'succeeded', outputs: { i: 7, a: {} }, runId: expect.any(String) });
      expect(rejected.status).toBe('rejected');
      expect(rejected.runId).toBeUndefined();
      expect(rejected.error?.code).toBe('INVALID_WORKFLOW');
      expect(rejected.error?.message).toMatch(/nodes/);
    } finally {
      await submitter.close();
    }
  });

  it('a second submission with the same idempotency key gets its own completion, also after the run finished', async () => {
    const submitter = new QueueSubmitter(stack.redis, { prefix: stack.prefix });
    try {
      const first = await submitter.submitAndWait({ tenantId: 'acme', workflow, inputs: { i: 1 }, idempotencyKey: 'same-run' }, { timeoutMs: 60_000 });
      const again = await submitter.submitAndWait({ tenantId: 'acme', workflow, inputs: { i: 1 }, idempotencyKey: 'same-run', correlationId: 'second-caller' }, { timeoutMs: 60_000 });
      expect(again).toMatchObject({ runId: first.runId, status: 'succeeded', correlationId: 'second-caller' });
      // The very same call again (same key and correlation id: the same job, finished long ago)
      // finds the completion already on the stream.
      const repeated = await submitter.submitAndWait({ tenantId: 'acme', workflow, inputs: { i: 1 }, idempotencyKey: 'same-run', correlationId: 'second-caller' }, { timeoutMs: 10_000 });
      expect(repeated).toMatchObject({ runId: first.runId, status: 'succeeded', correlationId: 'second-caller' });
    } finally {
      await submitter.close();
    }
  });

  it('answers a submission its run cannot take (the run sends to 16 targets already) with a rejected completion', async () => {
    const submitter = new QueueSubmitter(stack.redis, { prefix: stack.prefix });
    try {
      const message = { tenantId: 'acme', workflow, inputs: { i: 2 }, idempotencyKey: 'crowded' };
      const answers = await Promise.all(Array.from({ length: 16 }, (_, i) => submitter.submitAndWait({ ...message, correlationId: `caller-${i}` }, { timeoutMs: 60_000 })));
      expect(new Set(answers.map((a) => a.runId)).size).toBe(1);
      expect(answers.every((a) => a.status === 'succeeded')).toBe(true);
      const refused = await submitter.submitAndWait({ ...message, correlationId: 'caller-16' }, { timeoutMs: 30_000 });
      expect(refused).toMatchObject({ status: 'rejected', correlationId: 'caller-16', error: { code: 'CONFLICT', message: expect.stringContaining('already sends its completion to 16 targets') } });
    } finally {
      await submitter.close();
    }
  });

  it('refuses a reply target that is not a name, before anything is queued', async () => {
    const submitter = new QueueSubmitter(stack.redis, { prefix: stack.prefix });
    try {
      const submissions = new Queue(QUEUE_NAMES.submissions, { connection: stack.redis, prefix: stack.bullPrefix(QUEUE_NAMES.submissions) });
      const before = await submissions.count();
      await expect(submitter.submit({ tenantId: 'acme', workflow, replyTo: 'a b{c}' })).rejects.toThrow(/replyTo "a b\{c\}" is not a reply target name/);
      expect(await submissions.count()).toBe(before);
      await submissions.close();
    } finally {
      await submitter.close();
    }
  });
});
