import { QUEUE_NAMES, cancelChannel, canceledSetKey, executionIdOf, givenUpOf, givenUpResult, queuePrefix, replyStreamKey, type ExecJob, type ExecResult, type JsonObject, type ResultMessage } from '@podflow/protocol';
import { createRunState, parseWorkflow, transition, type EngineEvent, type RunState, type Workflow } from '@podflow/workflow';
import { Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GIVEN_UP_GRACE_MS } from './given-up-sweep';
import { CANCEL_CHUNK, ENQUEUE_CHUNK, OutboxExecutor } from './outbox-executor';
import { forgetRecordlessAfterMs } from './outbox-sweeper';
import { RunPayloads } from './run-payloads';
import { eventsOf } from './results.processor';
import { loggedErrors, startCoordinator, testConfig, type TestCoordinator } from './testing/coordinators';

// A real Redis (REDIS_URL, started by `npm test`). Issue 11: commands are never lost, and any
// number of coordinators, duplicates, reordering and delays give exactly the sequential outcome.
const redisUrl = process.env.REDIS_URL;
if (!redisUrl) throw new Error('REDIS_URL is not set: run this suite through `npm test`, which starts a private redis-server');

const code = 'def main(args): return {}';

/** Workflows that exercise fan-out/fan-in, retries, error branches, conditions and skips, with outcomes fixed per (node, attempt). */
const WORKFLOWS: Workflow[] = [
  parseWorkflow({
    id: 'fan',
    nodes: [{ id: 'root', language: 'python', code }, ...Array.from({ length: 8 }, (_, i) => ({ id: `leaf${i}`, language: 'python', code })), { id: 'join', language: 'python', code }],
    edges: [...Array.from({ length: 8 }, (_, i) => ({ from: 'root', to: `leaf${i}` })), ...Array.from({ length: 8 }, (_, i) => ({ from: `leaf${i}`, to: 'join' }))],
  }),
  parseWorkflow({
    id: 'retry-chain',
    nodes: [
      { id: 'a', language: 'python', code },
      { id: 'flaky', language: 'python', code, retries: { max: 2, backoff: 'fixed', delay: '0s' } },
      { id: 'c', language: 'python', code, inputs: { seen: 'nodes.flaky.output.n' } },
    ],
    edges: [{ from: 'a', to: 'flaky' }, { from: 'flaky', to: 'c' }],
  }),
  parseWorkflow({
    id: 'branches',
    output: '{ "handled": nodes.handler.output.n, "big": nodes.big.status, "small": nodes.small.status }',
    nodes: [
      { id: 'bad', language: 'python', code },
      { id: 'handler', language: 'python', code },
      { id: 'never', language: 'python', code },
      { id: 'x', language: 'python', code },
      { id: 'big', language: 'python', code },
      { id: 'small', language: 'python', code },
      { id: 'after', language: 'python', code },
    ],
    edges: [
      { from: 'bad', to: 'handler', on: 'failure' },
      { from: 'bad', to: 'never' },
      { from: 'x', to: 'big', when: 'nodes.x.output.n > 4' },
      { from: 'x', to: 'small', when: 'nodes.x.output.n <= 4' },
      { from: 'big', to: 'after' },
      { from: 'small', to: 'after' },
    ],
  }),
];

function outcomeOf(job: Pick<ExecJob, 'runId' | 'nodeId' | 'attempt' | 'executionId' | 'tenantId'>): ExecResult {
  const failed = job.nodeId === 'bad' || (job.nodeId === 'flaky' && job.attempt === 1);
  const n = [...job.nodeId].reduce((sum, c) => sum + c.charCodeAt(0), 0) % 10;
  return {
    executionId: job.executionId,
    tenantId: job.tenantId,
    runId: job.runId,
    nodeId: job.nodeId,
    attempt: job.attempt,
    status: failed ? 'failed' : 'succeeded',
    ...(failed ? { error: { code: 'CODE_EXECUTION_FAILED', message: `${job.nodeId} failed` } } : { output: { n, node: job.nodeId } }),
    logs: { stdout: '', stderr: '', truncated: false },
    warnings: [],
    timings: { enqueuedAt: 0, startedAt: 0, finishedAt: 0, queueWaitMs: 0, executionMs: 0 },
    workerId: 'test',
  };
}

/** Polls `done` every 20 ms for up to 10 s. */
async function waitFor(done: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Makes the next call of `object[method]` wait until `resume()`; `reached()` says whether it was made. */
function stallNextCall<T extends object>(object: T, method: keyof T & string): { reached: () => boolean; resume: () => void } {
  let reached = false;
  let resume!: () => void;
  const gate = new Promise<void>((resolve) => (resume = resolve));
  const original = (object[method] as (...args: unknown[]) => Promise<unknown>).bind(object);
  jest.spyOn(object, method as never).mockImplementationOnce((async (...args: unknown[]) => {
    reached = true;
    await gate;
    return original(...args);
  }) as never);
  return { reached: () => reached, resume };
}

/** A root and `leaves` leaves after it (`leaf0`, `leaf1`, ...). */
function fanOut(id: string, leaves: number): Workflow {
  return parseWorkflow({
    id,
    nodes: [{ id: 'root', language: 'python', code }, ...Array.from({ length: leaves }, (_, i) => ({ id: `leaf${i}`, language: 'python', code }))],
    edges: Array.from({ length: leaves }, (_, i) => ({ from: 'root', to: `leaf${i}` })),
  });
}

/** Creates a run on `coordinator` and waits until its first session has ended (lease free, no mark). */
async function createdAndIdle(coordinator: TestCoordinator, id: string, workflow: Workflow): Promise<string> {
  await coordinator.orchestrator.createRun({ id, tenantId: 't', workflow, inputs: {} });
  await waitFor(() => coordinator.orchestrator.activeSessions === 0, "the creation's session ended");
  return id;
}

/** The outcome one coordinator applying every result at once, in order, gives (the pure engine). */
async function sequentialOutcome(workflow: Workflow, runId: string): Promise<RunState> {
  let state = createRunState({ id: runId, tenantId: 't', workflow, inputs: { k: 1 }, now: 0 });
  const queue: ExecJob[] = [];
  const step = async (event: EngineEvent) => {
    const next = await transition(state, event);
    state = next.state;
    for (const command of next.commands) if (command.type === 'enqueue') queue.push(command.job);
  };
  await step({ type: 'start', at: 0 });
  for (let job = queue.shift(); job; job = queue.shift()) await step({ type: 'node_finished', result: outcomeOf(job), at: 1 });
  return state;
}

/** What must be equal whatever the order: statuses, attempts, outputs, errors' codes. */
function projection(run: { status: string; outputs?: JsonObject | null; error?: { code: string } }, nodes: Array<[string, { status: string; attempts: number; output?: JsonObject; error?: { code: string } }]>) {
  return {
    status: run.status,
    outputs: run.outputs ?? null,
    error: run.error?.code,
    nodes: Object.fromEntries(nodes.map(([id, n]) => [id, { status: n.status, attempts: n.attempts, output: n.output, error: n.error?.code }])),
  };
}

describe('orchestration on a real Redis (issue 11)', () => {
  let storageDir: string;
  let prefix: string;
  const coordinators: TestCoordinator[] = [];
  /** Run after each test, before the coordinators close. */
  const cleanups: Array<() => Promise<void>> = [];
  const start = (overrides: Record<string, string> = {}) => {
    const coordinator = startCoordinator(testConfig(redisUrl, prefix, storageDir, overrides), storageDir);
    coordinators.push(coordinator);
    return coordinator;
  };

  beforeEach(() => {
    storageDir = mkdtempSync(join(tmpdir(), 'podflow-orch-'));
    prefix = `t-${randomUUID().slice(0, 8)}`;
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
    await Promise.all(coordinators.splice(0).map((c) => c.close()));
    rmSync(storageDir, { recursive: true, force: true });
  });

  it('a run over at creation expires like any other, and still sends its completion to its reply target', async () => {
    const coordinator = start();
    const workflow = parseWorkflow({ id: 'dead-on-arrival', nodes: [{ id: 'a', language: 'python', code, inputs: { n: '$number("not a number")' } }] });
    const { id } = await coordinator.orchestrator.createRun({ id: 'doa', tenantId: 't', workflow, inputs: {}, notify: [{ kind: 'reply', replyTo: 'svc', correlationId: 'c1' }] });
    expect((await coordinator.store.record(id))?.status).toBe('failed');
    for (const key of [coordinator.store.keys.run(id), coordinator.store.keys.nodes(id), coordinator.store.keys.events(id)]) {
      const ttl = await coordinator.redis.ttl(key);
      expect({ key, expires: ttl > 0 && ttl <= coordinator.config.RUN_RETENTION_SECONDS }).toEqual({ key, expires: true });
    }
    const stream = replyStreamKey(prefix, 'svc');
    const entries = await coordinator.redis.xrange(stream, '-', '+');
    expect(entries).toHaveLength(1);
    expect(JSON.parse(entries[0]![1][1]!)).toMatchObject({ runId: id, status: 'failed', correlationId: 'c1', error: { code: 'INPUT_BINDING_FAILED' } });
    // Carried out again (a coordinator that died before acknowledging): still one entry.
    await coordinator.orchestrator.takeOver(id);
    await coordinator.redis.xadd(coordinator.store.keys.outbox(id), '*', 'c', JSON.stringify({ type: 'run_finished' }));
    await coordinator.orchestrator.takeOver(id);
    expect(await coordinator.redis.xlen(stream)).toBe(1);
    expect(await coordinator.redis.xlen(coordinator.store.keys.outbox(id))).toBe(0);
  });

  it('a creation carries out the commands it wrote without reading them back, acknowledges them by id and lets the lease go', async () => {
    const coordinator = start();
    const outboxReads = jest.spyOn(coordinator.store, 'outbox');
    const workflow = parseWorkflow({ id: 'two-roots', nodes: [{ id: 'a', language: 'python', code }, { id: 'b', language: 'python', code }] });
    await createdAndIdle(coordinator, 'r-created', workflow);
    expect(outboxReads).not.toHaveBeenCalled();
    expect((await coordinator.execQueue.getJobs(['waiting', 'prioritized'])).map((job) => job.data.nodeId).sort()).toEqual(['a', 'b']);
    expect(await coordinator.redis.xlen(coordinator.store.keys.outbox('r-created'))).toBe(0);
    expect(await coordinator.redis.exists(coordinator.store.keys.lease('r-created'))).toBe(0);
    expect(await coordinator.store.staleRuns(Date.now() + 60_000)).not.toContain('r-created');
  });

  it('acknowledges outbox commands by id: a command written after another coordinator acknowledged is carried out, not trimmed', async () => {
    // The interleaving that lost a command when the outbox was a list acknowledged by count
    // (LRANGE, then LTRIM n): A and B both read [c1]; B carries it out and trims 1; c2 is
    // appended; A carries out c1 again (harmless) and trims 1, dropping c2, never carried out.
    const a = start();
    const b = start();
    const runId = 'r-ack';
    const outbox = a.store.keys.outbox(runId);
    const command = (at: number) => JSON.stringify({ type: 'schedule_run_timeout', at });
    await a.redis.xadd(outbox, '*', 'c', command(1));
    const readByA = await a.store.outbox(runId);
    const readByB = await b.store.outbox(runId);
    expect(readByA.map((e) => e.command)).toEqual([{ type: 'schedule_run_timeout', at: 1 }]);
    await b.store.ackOutbox(runId, readByB.map((e) => e.id));
    await b.redis.xadd(outbox, '*', 'c', command(2));
    await a.store.ackOutbox(runId, readByA.map((e) => e.id));
    expect((await a.store.outbox(runId)).map((e) => e.command)).toEqual([{ type: 'schedule_run_timeout', at: 2 }]);
  });

  it('marks set in one millisecond get scores of their own: an ending session never clears the mark of a newer owner', async () => {
    const { store } = start();
    const at = 1_000_000;
    const ending = await store.markActive('r-mark', at);
    const newer = await store.markActive('r-mark', at); // a new owner, the same millisecond
    const behind = await store.markActive('r-mark', at - 5); // a coordinator whose clock lags
    expect(ending).toBe(at);
    expect(newer).toBe(at + 1);
    expect(behind).toBe(at + 2);
    await store.markIdle('r-mark', ending);
    await store.markIdle('r-mark', newer);
    expect(await store.staleRuns(at + 10)).toEqual(['r-mark']);
    await store.markIdle('r-mark', behind);
    expect(await store.staleRuns(at + 10)).toEqual([]);
  });

  it('a submit that takes the lease marks the run itself: a mark set just before it may have been replaced and cleared by another coordinator\'s whole session', async () => {
    // On a Redis Cluster the mark and the submit go to different nodes; between them B runs a
    // session that replaces A's mark with its own and clears it as it ends.
    const a = start();
    const b = start();
    const workflow = parseWorkflow({ id: 'two', nodes: ['a', 'b'].map((id) => ({ id, language: 'python', code })), edges: [{ from: 'a', to: 'b' }] });
    const id = await createdAndIdle(a, 'r-unmarked', workflow);
    expect(await a.store.staleRuns(Date.now() + 60_000)).toEqual([]);
    const execution = (nodeId: string) => ({ runId: id, nodeId, attempt: 1, executionId: executionIdOf(id, nodeId, 1), tenantId: 't' });
    // A's mark lands (none was there), its submit waits.
    const submitting = stallNextCall(a.store, 'submit');
    cleanups.push(async () => submitting.resume()); // a failed assertion must not leave a session waiting forever
    const aSubmit = a.orchestrator.submit(id, { type: 'node_finished', result: outcomeOf(execution('a')), at: 2 });
    await waitFor(submitting.reached, 'A marked the run and is about to submit');
    await waitFor(async () => (await a.store.staleRuns(Date.now() + 60_000)).length === 1, "A's mark stored");
    // B's whole session: it takes the lease, replaces A's mark, applies, releases and clears its mark.
    await b.orchestrator.submit(id, { type: 'node_started', nodeId: 'a', executionId: executionIdOf(id, 'a', 1), at: 1 });
    await waitFor(() => b.orchestrator.activeSessions === 0, "B's session ended");
    expect(await a.store.staleRuns(Date.now() + 60_000)).toEqual([]);
    // A's submit takes the free lease; its session is about to commit a's result (b's enqueue) when A dies.
    const committing = stallNextCall(a.store, 'commit');
    cleanups.push(async () => committing.resume());
    submitting.resume();
    expect(await aSubmit).toBe('accepted');
    await waitFor(committing.reached, "A's session is about to commit");
    expect(await a.store.staleRuns(Date.now() + 60_000)).toEqual([id]);
    // A "dies" there (its lease runs out, its session never commits): B's sweeper takes the run over.
    await a.redis.del(a.store.keys.lease(id));
    expect(await b.sweeper.sweep(Date.now() + 3 * b.config.RUN_LEASE_MS)).toBe(1);
    await waitFor(async () => (await b.store.nodes(id, ['b'])).get('b')?.status === 'queued', "B applied a's result: b is queued");
    committing.resume();
    await waitFor(() => a.orchestrator.activeSessions === 0, "A's stalled session ended (its lease was lost)");
    expect((await a.execQueue.getJobs(['waiting', 'prioritized'])).map((job) => job.data.nodeId).sort()).toEqual(['a', 'b']);
    expect(loggedErrors).toEqual([]);
  });

  it('a session started by a submit applies its first batch meanwhile but commits only once its mark is stored', async () => {
    const a = start();
    const workflow = parseWorkflow({ id: 'two', nodes: ['a', 'b'].map((id) => ({ id, language: 'python', code })), edges: [{ from: 'a', to: 'b' }] });
    const id = await createdAndIdle(a, 'r-mark-first', workflow);
    const marking = stallNextCall(a.store, 'markActive');
    cleanups.push(async () => marking.resume());
    const commit = jest.spyOn(a.store, 'commit');
    cleanups.push(async () => commit.mockRestore());
    const submitted = a.orchestrator.submit(id, { type: 'node_finished', result: outcomeOf({ runId: id, nodeId: 'a', attempt: 1, executionId: executionIdOf(id, 'a', 1), tenantId: 't' }), at: 1 });
    await waitFor(marking.reached, 'the submit took the lease and is marking the run');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(commit).not.toHaveBeenCalled();
    expect(await a.redis.xlen(a.store.keys.outbox(id))).toBe(0);
    marking.resume();
    expect(await submitted).toBe('accepted');
    await waitFor(() => a.orchestrator.activeSessions === 0, 'the session ended');
    expect(commit).toHaveBeenCalledTimes(1);
    expect((await a.store.nodes(id, ['b'])).get('b')).toMatchObject({ status: 'queued' });
    expect(loggedErrors).toEqual([]);
  });

  it('a creation that stalls past two leases before writing its run keeps its mark: the sweeper forgets record-less marks only when no creation can still be writing', async () => {
    const a = start();
    const b = start();
    const workflow = parseWorkflow({ id: 'one', nodes: [{ id: 'a', language: 'python', code }] });
    const creating = stallNextCall(a.store, 'create');
    cleanups.push(async () => creating.resume());
    const created = a.orchestrator.createRun({ id: 'r-slow', tenantId: 't', workflow, inputs: {} });
    await waitFor(creating.reached, 'A marked the run and is about to write it');
    expect(await b.sweeper.sweep(Date.now() + 3 * b.config.RUN_LEASE_MS)).toBe(0);
    expect(await b.store.staleRuns(Date.now() + 60_000)).toEqual(['r-slow']);
    creating.resume();
    expect(await created).toEqual({ id: 'r-slow', created: true });
    // A mark whose run was never stored is forgotten once old enough.
    const at = Date.now();
    await b.store.markActive('r-never', at);
    await b.sweeper.sweep(at + 3 * b.config.RUN_LEASE_MS);
    expect(await b.store.staleRuns(at + 60_000)).toContain('r-never');
    await b.sweeper.sweep(at + forgetRecordlessAfterMs(b.config.RUN_LEASE_MS) + 1);
    expect(await b.store.staleRuns(at + 60_000)).not.toContain('r-never');
    expect(loggedErrors).toEqual([]);
  });

  it('marks the sweeper leaves (young record-less ones) do not hide a run behind them that needs taking over', async () => {
    const coordinator = start();
    const { store, redis } = coordinator;
    const workflow = parseWorkflow({ id: 'one', nodes: [{ id: 'a', language: 'python', code }] });
    const id = await createdAndIdle(coordinator, 'r-behind', workflow);
    const at = Date.now();
    // 250 creations under way (marked, not written yet), then a run whose owner died with a command in its outbox.
    for (let i = 0; i < 250; i++) await store.markActive(`r-creating-${i}`, at);
    await store.markActive(id, at + 1);
    await redis.xadd(store.keys.outbox(id), '*', 'c', JSON.stringify({ type: 'schedule_run_timeout', at: Date.now() + 600_000 }));
    expect(await coordinator.sweeper.sweep(at + 3 * coordinator.config.RUN_LEASE_MS)).toBe(1);
    expect(await redis.xlen(store.keys.outbox(id))).toBe(0);
    expect(await store.staleRuns(at + 60_000, 1000)).toHaveLength(250);
    expect(loggedErrors).toEqual([]);
  });

  it('two creations with one idempotency key: the one that loses leaves the run marked, so a winner that dies before carrying out its first commands is taken over', async () => {
    const a = start();
    const b = start();
    const workflow = parseWorkflow({ id: 'one', nodes: [{ id: 'a', language: 'python', code }] });
    // A claims the key and stalls just before marking the run.
    const marking = stallNextCall(a.store, 'markActiveReplacing');
    const creatingA = a.orchestrator.createRun({ id: 'r-idem', tenantId: 't', workflow, inputs: {}, idempotencyKey: 'k1' });
    await waitFor(marking.reached, 'A is about to mark the run');
    // B finds the key claimed but no run, so it creates the run under A's id, and dies before carrying out its first command.
    const execute = jest.spyOn(OutboxExecutor.prototype, 'execute').mockRejectedValueOnce(new Error('B died'));
    cleanups.push(async () => execute.mockRestore());
    expect(await b.orchestrator.createRun({ id: 'r-idem-b', tenantId: 't', workflow, inputs: {}, idempotencyKey: 'k1' })).toEqual({ id: 'r-idem', created: false });
    expect(execute).toHaveBeenCalledTimes(1);
    expect(loggedErrors.splice(0)).toEqual([expect.stringContaining('B died')]);
    // A marks the run (its mark replaces B's), finds it created and leaves the mark.
    marking.resume();
    expect(await creatingA).toEqual({ id: 'r-idem', created: false });
    expect(await a.store.staleRuns(Date.now() + 60_000)).toEqual(['r-idem']);
    // B's lease runs out: a sweeper takes the run over and carries out its first command.
    await a.redis.del(a.store.keys.lease('r-idem'));
    expect(await a.execQueue.getJobCounts('waiting', 'prioritized')).toMatchObject({ waiting: 0, prioritized: 0 });
    expect(await a.sweeper.sweep(Date.now() + 3 * a.config.RUN_LEASE_MS)).toBe(1);
    expect((await a.execQueue.getJobs(['waiting', 'prioritized'])).map((job) => job.data.nodeId)).toEqual(['a']);
    expect(await a.store.staleRuns(Date.now() + 60_000)).toEqual([]);
    expect(loggedErrors).toEqual([]);
  });

  it('a creation that loses the race for its key and replaced no mark clears its own: no take-over of a run nobody left', async () => {
    const a = start();
    const b = start();
    const workflow = parseWorkflow({ id: 'one', nodes: [{ id: 'a', language: 'python', code }] });
    // B finds the key claimed but no run yet, and stalls before marking the run.
    const marking = stallNextCall(b.store, 'markActiveReplacing');
    await a.store.claimIdempotencyKey('t', 'k3', 'r-lose');
    const creatingB = b.orchestrator.createRun({ id: 'r-lose-b', tenantId: 't', workflow, inputs: {}, idempotencyKey: 'k3' });
    await waitFor(marking.reached, 'B is about to mark the run');
    // A, which claimed the key, creates the run and finishes its session; then B marks it (no mark there) and loses.
    expect(await a.orchestrator.createRun({ id: 'r-lose', tenantId: 't', workflow, inputs: {}, idempotencyKey: 'k3' })).toMatchObject({ id: 'r-lose', created: true });
    expect(await a.store.staleRuns(Date.now() + 60_000)).toEqual([]);
    marking.resume();
    expect(await creatingB).toEqual({ id: 'r-lose', created: false });
    expect(await a.store.staleRuns(Date.now() + 60_000)).toEqual([]);
    expect(loggedErrors).toEqual([]);
  });

  it('a creation with an idempotency key that fails before writing leaves its mark: it may have replaced the mark of the creation that stores the run', async () => {
    const a = start();
    const b = start();
    const workflow = parseWorkflow({ id: 'one', nodes: [{ id: 'a', language: 'python', code }] });
    // A claims the key, marks the run and stalls before storing it.
    const storing = stallNextCall(a.store, 'create');
    const creatingA = a.orchestrator.createRun({ id: 'r-key', tenantId: 't', workflow, inputs: {}, idempotencyKey: 'k2' });
    await waitFor(storing.reached, 'A is about to store the run');
    // The client's retry reaches B, whose mark replaces A's; B fails before writing anything.
    const dehydrate = jest.spyOn(RunPayloads.prototype, 'dehydrate').mockRejectedValueOnce(new Error('object store answered 503'));
    cleanups.push(async () => dehydrate.mockRestore());
    await expect(b.orchestrator.createRun({ id: 'r-key-b', tenantId: 't', workflow, inputs: {}, idempotencyKey: 'k2' })).rejects.toThrow('503');
    // A stores the run and dies before carrying out its first commands.
    const execute = jest.spyOn(OutboxExecutor.prototype, 'execute').mockRejectedValueOnce(new Error('A died'));
    cleanups.push(async () => execute.mockRestore());
    storing.resume();
    expect(await creatingA).toEqual({ id: 'r-key', created: true });
    expect(loggedErrors.splice(0)).toEqual([expect.stringContaining('A died')]);
    expect(await a.store.staleRuns(Date.now() + 60_000)).toEqual(['r-key']);
    // A's lease runs out: a sweeper takes the run over and carries out its commands.
    await a.redis.del(a.store.keys.lease('r-key'));
    expect(await a.sweeper.sweep(Date.now() + 3 * a.config.RUN_LEASE_MS)).toBe(1);
    expect((await a.execQueue.getJobs(['waiting', 'prioritized'])).map((job) => job.data.nodeId)).toEqual(['a']);
    expect(loggedErrors).toEqual([]);
  });

  it('a session that stalls past its lease writes nothing once another coordinator applied its batch, even when its own process holds the lease again', async () => {
    // One lease token per process: a submit of this process can take the lease back while the
    // stalled session still waits to commit. Its first inbox entry is gone by then (applied by B).
    const a = start();
    const b = start();
    const workflow = parseWorkflow({ id: 'chain3', nodes: ['a', 'b', 'c'].map((id) => ({ id, language: 'python', code })), edges: [{ from: 'a', to: 'b' }, { from: 'b', to: 'c' }] });
    const { id } = await a.orchestrator.createRun({ id: 'r-aba', tenantId: 't', workflow, inputs: {} });
    const finished = (nodeId: string, at: number): EngineEvent => ({ type: 'node_finished', result: outcomeOf({ runId: id, nodeId, attempt: 1, executionId: executionIdOf(id, nodeId, 1), tenantId: 't' }), at });
    const committing = stallNextCall(a.store, 'commit');
    await a.orchestrator.submit(id, finished('a', 1));
    await waitFor(committing.reached, "A's session is about to commit a's result");
    await a.redis.del(a.store.keys.lease(id)); // its lease runs out
    // B applies a's result (delivered again) and then b's.
    await b.orchestrator.submit(id, finished('a', 2));
    await waitFor(() => b.orchestrator.activeSessions === 0, "B applied a's result");
    await b.orchestrator.submit(id, finished('b', 3));
    await waitFor(() => b.orchestrator.activeSessions === 0, "B applied b's result");
    // An event reaches A: its process takes the lease with the same token, then the stalled session resumes.
    await a.orchestrator.submit(id, { type: 'node_started', nodeId: 'c', executionId: executionIdOf(id, 'c', 1), at: 4 });
    committing.resume();
    await waitFor(() => a.orchestrator.activeSessions === 0, 'A finished');
    const nodes = await a.store.nodes(id, ['a', 'b', 'c']);
    expect([...nodes].map(([nodeId, node]) => [nodeId, node.status])).toEqual([['a', 'succeeded'], ['b', 'succeeded'], ['c', 'running']]);
    expect(await a.redis.get(a.store.keys.lease(id))).toBeNull();
    await b.orchestrator.submit(id, finished('c', 5));
    await waitFor(async () => (await a.store.record(id))?.status === 'succeeded', 'the run succeeded');
    expect(loggedErrors).toEqual([]);
  });

  it('a submit that takes the lease reads the first batch with it; a dead owner\'s command in the outbox is carried out before that batch is applied', async () => {
    const coordinator = start();
    const { store, redis } = coordinator;
    const workflow = parseWorkflow({ id: 'one', nodes: [{ id: 'a', language: 'python', code }] });
    const { id } = await coordinator.orchestrator.createRun({ id: 'r-first', tenantId: 't', workflow, inputs: {} });
    const [exec] = await coordinator.execQueue.getJobs(['waiting', 'prioritized']);
    const started: EngineEvent = { type: 'node_started', nodeId: 'a', executionId: exec!.data.executionId, at: Date.now() };

    // Another coordinator holds the lease: the event waits for it.
    await redis.set(store.keys.lease(id), 'someone-else', 'PX', 60_000);
    expect(await store.submit(id, [started], 'me', 10)).toEqual({ outcome: 'queued' });
    // It died with a committed command not carried out, and its lease ran out.
    await redis.del(store.keys.lease(id));
    await redis.xadd(store.keys.outbox(id), '*', 'c', JSON.stringify({ type: 'schedule_run_timeout', at: Date.now() + 600_000 }));
    const taken = await store.submit(id, [started], 'me', 10);
    expect(taken).toMatchObject({ outcome: 'owner', first: { record: { id, status: 'running' }, outboxEmpty: false } });
    expect(taken.outcome === 'owner' && taken.first.entries.map((entry) => entry.event)).toEqual([started, started]);

    // Through the orchestrator: the outbox goes first, then every waiting event is applied.
    await redis.del(store.keys.lease(id));
    await coordinator.orchestrator.submitAndWait(id, started);
    expect(await redis.xlen(store.keys.outbox(id))).toBe(0);
    expect(await redis.xlen(store.keys.inbox(id))).toBe(0);
    expect((await store.nodes(id, ['a'])).get('a')).toMatchObject({ status: 'running' });
    expect(await redis.get(store.keys.lease(id))).toBeNull();
    expect(loggedErrors).toEqual([]);
  });

  it('an execution the queue gave up on and its worker never reported is reported by the sweep; one its worker reported is not reported twice', async () => {
    const coordinator = start();
    const workflow = parseWorkflow({ id: 'one', nodes: [{ id: 'a', language: 'python', code }] });
    await coordinator.givenUp.sweep(); // a deployment's first pass: the cursor starts here
    const [lost, reported] = ['r-lost', 'r-reported'];
    // The "worker": BullMQ fails both jobs for good; it reports only one of them, as if it died before the other's report.
    const failed = new Set<string>();
    const connection = coordinator.redis.duplicate({ maxRetriesPerRequest: null });
    const worker = new Worker<ExecJob>(
      QUEUE_NAMES.exec,
      async () => {
        throw new UnrecoverableError('the sandbox host went away');
      },
      { connection, prefix: queuePrefix(prefix, QUEUE_NAMES.exec), autorun: false },
    );
    worker.on('failed', (job) => {
      if (job?.data.runId === reported) void coordinator.orchestrator.submit(reported, { type: 'node_finished', result: givenUpResult(job.data, givenUpOf(job, job.failedReason), 'w', Date.now()), at: Date.now() });
      if (job) failed.add(job.data.runId);
    });
    try {
      for (const id of [lost, reported]) await coordinator.orchestrator.createRun({ id, tenantId: 't', workflow, inputs: {} });
      void worker.run();
      await waitFor(() => failed.size === 2, 'both exec jobs failed');
    } finally {
      await worker.close();
      connection.disconnect();
    }
    const attempts = async (runId: string) => (await coordinator.store.nodes(runId, ['a'])).get('a')?.attempts;
    await waitFor(async () => (await coordinator.execQueue.getJob(executionIdOf(reported, 'a', 2))) !== undefined, 'the reported failure retried');
    expect(await attempts(lost)).toBe(1); // without the sweep, it would wait for RUN_TIMEOUT

    // Within the grace period, the workers may still report: nothing is read yet.
    expect(await coordinator.givenUp.sweep()).toBe(0);
    const later = Date.now() + GIVEN_UP_GRACE_MS + 1_000;
    expect(await coordinator.givenUp.sweep(later)).toBe(2);
    // The reports go through `results`, like a worker's (ResultsProcessor's part of it here).
    const resultsConnection = coordinator.redis.duplicate({ maxRetriesPerRequest: null });
    const results = new Worker<ResultMessage>(QUEUE_NAMES.results, async (job) => {
      for (const [runId, events] of eventsOf(job.data, Date.now())) await coordinator.orchestrator.submit(runId, events);
    }, { connection: resultsConnection, prefix: queuePrefix(prefix, QUEUE_NAMES.results) });
    cleanups.push(async () => {
      await results.close();
      resultsConnection.disconnect();
    });
    // Its retry is committed, then enqueued.
    await waitFor(async () => (await coordinator.execQueue.getJob(executionIdOf(lost, 'a', 2))) !== undefined, 'the lost failure retried');
    expect((await coordinator.store.nodes(lost, ['a'])).get('a')).toMatchObject({ status: 'queued', attempts: 2 });
    expect(await attempts(reported)).toBe(2); // its second report changed nothing
    expect(await coordinator.execQueue.getJob(executionIdOf(reported, 'a', 3))).toBeUndefined();
    // The cursor moved past them: the next pass reports nothing again.
    expect(await coordinator.givenUp.sweep(later + 1)).toBe(0);
    expect(loggedErrors).toEqual([]);
  });

  it('the given-up sweep reads a millisecond of failures whole past its cap, so its cursor never skips one', async () => {
    const { givenUp, redis, execQueue } = start();
    await givenUp.sweep(1_000_000 + GIVEN_UP_GRACE_MS); // cursor at 1,000,000
    const cursorKey = `${execQueue.keys.failed}:given-up-cursor`;
    // 1,050 failures in one millisecond (one stalled-job check fails many at once), then 10 later.
    const args: Array<string | number> = [];
    for (let i = 0; i < 1_050; i++) args.push(1_000_005, `same-${i}`);
    for (let i = 0; i < 10; i++) args.push(1_000_009, `later-${i}`);
    await redis.zadd(execQueue.keys.failed, ...args);
    const now = 2_000_000 + GIVEN_UP_GRACE_MS;
    // No such jobs exist, so nothing is submitted; the jobs looked up and the cursor show what was read.
    const lookups = jest.spyOn(Job, 'fromId');
    try {
      expect(await givenUp.sweep(now)).toBe(0);
      expect(lookups.mock.calls.map(([, id]) => id)).toEqual(Array.from({ length: 1_050 }, (_, i) => `same-${i}`).sort());
      expect(await redis.get(cursorKey)).toBe('1000005'); // all 1,050 read (over the cap of 1,000), not the later ones
      lookups.mockClear();
      expect(await givenUp.sweep(now)).toBe(0);
      expect(lookups.mock.calls.map(([, id]) => id)).toEqual(Array.from({ length: 10 }, (_, i) => `later-${i}`));
      expect(await redis.get(cursorKey)).toBe('2000000'); // the rest read: up to now - grace
    } finally {
      lookups.mockRestore();
    }
    await givenUp.sweep(now - 1); // never back
    expect(await redis.get(cursorKey)).toBe('2000000');
  });

  it('three coordinators, shuffled, duplicated and delayed results of 150 runs: every run ends exactly as one sequential application, no execution enqueued twice or missing', async () => {
    // Fan-outs wider than a page (the "fan" workflow's root has 8 leaves) resolve a page per step on two of them, each its own size.
    const trio = [start({ RESULTS_BATCH_MAX: '7', FANOUT_PAGE: '3' }), start({ RESULTS_BATCH_MAX: '50', FANOUT_PAGE: '5' }), start()];
    let workerConnection: ReturnType<Redis['duplicate']> | undefined;
    const runs: Array<{ id: string; workflow: Workflow }> = [];
    const enqueued = new Map<string, number>();
    const pending = new Set<Promise<void>>();
    const random = (n: number) => Math.floor(Math.random() * n);
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

    // The "workers": take each exec job once, and report it (started + finished) to random
    // coordinators, each message 1-3 times, after random delays, so results of one run arrive
    // out of order, twice, and at several coordinators at once.
    const worker = new Worker<ExecJob>(
      QUEUE_NAMES.exec,
      async (job) => {
        enqueued.set(job.data.executionId, (enqueued.get(job.data.executionId) ?? 0) + 1);
        const result = outcomeOf(job.data);
        const messages: Array<[string, EngineEvent]> = [
          [job.data.runId, { type: 'node_started', nodeId: job.data.nodeId, executionId: job.data.executionId, at: Date.now() }],
          [job.data.runId, { type: 'node_finished', result, at: Date.now() }],
        ];
        for (const [runId, event] of messages) {
          for (let copy = 0; copy < 1 + random(3); copy++) {
            const delivery = (async () => {
              await sleep(random(30));
              await trio[random(trio.length)]!.orchestrator.submit(runId, event);
            })();
            pending.add(delivery);
            void delivery.finally(() => pending.delete(delivery));
          }
        }
      },
      { connection: (workerConnection = trio[0]!.redis.duplicate()), prefix: queuePrefix(prefix, QUEUE_NAMES.exec), concurrency: 50 },
    );
    try {
      for (let i = 0; i < 150; i++) {
        const workflow = WORKFLOWS[i % WORKFLOWS.length]!;
        const { id } = await trio[i % 3]!.orchestrator.createRun({ id: `run-${i}`, tenantId: 't', workflow, inputs: { k: 1 } });
        runs.push({ id, workflow });
      }
      // Every run reaches its end (sweepers stand in for nobody here: no coordinator dies).
      const deadline = Date.now() + 90_000;
      for (;;) {
        const records = await Promise.all(runs.map((r) => trio[0]!.store.record(r.id)));
        if (records.every((r) => r && ['succeeded', 'failed', 'canceled'].includes(r.status))) break;
        if (Date.now() > deadline) {
          const stuck = runs.filter((_, i) => !records[i] || !['succeeded', 'failed', 'canceled'].includes(records[i]!.status));
          const details = await Promise.all(
            stuck.slice(0, 3).map(async ({ id, workflow }) => ({
              id,
              workflow: workflow.id,
              nodes: Object.fromEntries([...(await trio[0]!.store.nodes(id, workflow.nodes.map((n) => n.id)))].map(([n, r]) => [n, `${r.status}/${r.attempts}/w${r.waiting}f${r.fired}`])),
              inbox: await trio[0]!.redis.xlen(trio[0]!.store.keys.inbox(id)),
              outbox: await trio[0]!.redis.xlen(trio[0]!.store.keys.outbox(id)),
              lease: await trio[0]!.redis.get(trio[0]!.store.keys.lease(id)),
            })),
          );
          throw new Error(`${stuck.length} runs not finished: ${JSON.stringify(details, null, 1)}\nerrors logged: ${loggedErrors.slice(0, 5).join('\n')}`);
        }
        await sleep(100);
      }
      await Promise.all([...pending]);

      let executions = 0;
      for (const { id, workflow } of runs) {
        const expected = await sequentialOutcome(workflow, id);
        const record = (await trio[1]!.store.record(id))!;
        const nodes = await trio[2]!.store.nodes(id, workflow.nodes.map((n) => n.id));
        const actual = projection(record, [...nodes]);
        expect({ id, ...actual }).toEqual({ id, ...projection(expected, Object.entries(expected.nodes)) });
        for (const node of workflow.nodes) {
          for (let attempt = 1; attempt <= expected.nodes[node.id]!.attempts; attempt++) {
            executions += 1;
            expect({ execution: executionIdOf(id, node.id, attempt), times: enqueued.get(executionIdOf(id, node.id, attempt)) }).toEqual({ execution: executionIdOf(id, node.id, attempt), times: 1 });
          }
        }
      }
      expect(loggedErrors).toEqual([]);
      // Nothing beyond what the sequential outcome enqueued ran.
      expect(enqueued.size).toBe(executions);
      // Nothing left behind: inboxes empty, outboxes empty, leases released.
      for (const { id } of runs) {
        expect({ id, inbox: await trio[0]!.redis.xlen(trio[0]!.store.keys.inbox(id)), outbox: await trio[0]!.redis.xlen(trio[0]!.store.keys.outbox(id)) }).toEqual({ id, inbox: 0, outbox: 0 });
      }
    } finally {
      await worker.close();
      workerConnection?.disconnect();
    }
  }, 120_000);

  // Fair dispatch counts `exec` inside its admission script: the cap is exact. First come first
  // served reads a count up to 100 ms old: soft by one batch of ready nodes (8 leaves).
  it.each([
    ['fair dispatch', 'true', 0],
    ['first come first served', 'false', 8],
  ])('admission (%s): under a global cap, ready executions wait in their outbox and go in as the cap frees; every run finishes', async (_name, fair, softBy) => {
    const cap = 4;
    let workerConnection: ReturnType<Redis['duplicate']> | undefined;
    const coordinator = start({ ADMISSION_MAX_IN_FLIGHT: String(cap), FAIR_DISPATCH: fair });
    const workflow = WORKFLOWS[0]!; // root + 8 leaves + join
    let inFlightSeen = 0;
    let heldSeen = 0;
    const worker = new Worker<ExecJob>(
      QUEUE_NAMES.exec,
      async (job) => {
        const counts = await coordinator.execQueue.getJobCounts('wait', 'active', 'delayed', 'prioritized');
        inFlightSeen = Math.max(inFlightSeen, Object.values(counts).reduce((a, b) => a + b, 0));
        heldSeen = Math.max(heldSeen, await coordinator.redis.zcard(coordinator.store.keys.heldRuns('t')));
        await new Promise((resolve) => setTimeout(resolve, 5));
        await coordinator.orchestrator.submit(job.data.runId, { type: 'node_finished', result: outcomeOf(job.data), at: Date.now() });
      },
      { connection: (workerConnection = coordinator.redis.duplicate()), prefix: queuePrefix(prefix, QUEUE_NAMES.exec), concurrency: 4 },
    );
    const sweeps = setInterval(() => void coordinator.sweeper.sweep(), 50);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push((await coordinator.orchestrator.createRun({ id: `held-${i}`, tenantId: 't', workflow, inputs: {} })).id);
      const deadline = Date.now() + 60_000;
      for (;;) {
        const records = await Promise.all(ids.map((id) => coordinator.store.record(id)));
        if (records.every((r) => r?.status === 'succeeded')) break;
        if (Date.now() > deadline) throw new Error(`not finished: ${records.map((r) => r?.status).join(', ')}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(heldSeen).toBeGreaterThan(0);
      expect(inFlightSeen).toBeLessThanOrEqual(cap + softBy);
      expect(await coordinator.redis.zcard(coordinator.store.keys.heldRuns('t'))).toBe(0);
      expect(loggedErrors).toEqual([]);
    } finally {
      clearInterval(sweeps);
      await worker.close();
      workerConnection?.disconnect();
    }
  }, 90_000);

  it('enqueues a fan-out in chunks (one admission and one addBulk of at most ENQUEUE_CHUNK each: Redis serves no one else during either), each execution once, and a cap reached mid-way leaves exactly the rest in the outbox', async () => {
    const workflow = parseWorkflow({ id: 'wide', nodes: Array.from({ length: 2 * ENQUEUE_CHUNK + 100 }, (_, i) => ({ id: `n${i}`, language: 'python', code })) });
    const added = async (coordinator: TestCoordinator, runId: string) => (await coordinator.execQueue.getJobs(['waiting', 'prioritized'], 0, -1)).filter((job) => job.data.runId === runId);

    const open = start();
    const sizes: number[] = [];
    const addBulk = open.execQueue.addBulk.bind(open.execQueue);
    jest.spyOn(open.execQueue, 'addBulk').mockImplementation(async (jobs) => {
      sizes.push(jobs.length);
      return addBulk(jobs);
    });
    await createdAndIdle(open, 'r-wide', workflow);
    expect(sizes).toEqual([ENQUEUE_CHUNK, ENQUEUE_CHUNK, 100]);
    const jobs = await added(open, 'r-wide');
    expect(new Set(jobs.map((job) => job.data.nodeId)).size).toBe(2 * ENQUEUE_CHUNK + 100);
    expect(jobs).toHaveLength(2 * ENQUEUE_CHUNK + 100);
    expect(await open.redis.xlen(open.store.keys.outbox('r-wide'))).toBe(0);

    // A tenant cap inside the second chunk: the admitted prefix is enqueued and acknowledged, the rest waits.
    const capped = start({ TENANT_MAX_IN_FLIGHT: String(ENQUEUE_CHUNK + 30) });
    await capped.orchestrator.createRun({ id: 'r-wide-capped', tenantId: 'capped-tenant', workflow, inputs: {} });
    await waitFor(() => capped.orchestrator.activeSessions === 0, "the capped creation's session ended");
    expect(await added(capped, 'r-wide-capped')).toHaveLength(ENQUEUE_CHUNK + 30);
    expect(await capped.redis.xlen(capped.store.keys.outbox('r-wide-capped'))).toBe(ENQUEUE_CHUNK + 70);
    expect(await capped.store.isHeld('r-wide-capped', 'capped-tenant')).toBe(true);
  });

  it('a fan-out wider than FANOUT_PAGE readies its leaves a page per commit (the inbox carries the rest), each leaf enqueued once', async () => {
    const leaves = 250;
    const workflow = fanOut('fan-pages', leaves);
    const coordinator = start({ FANOUT_PAGE: '100' });
    const runId = await createdAndIdle(coordinator, 'r-fan-pages', workflow);
    const jobsOf = async () => (await coordinator.execQueue.getJobs(['waiting', 'prioritized'], 0, -1)).filter((job) => job.data.runId === runId);
    const [root] = await jobsOf();
    expect(root?.data.nodeId).toBe('root');

    const written: number[] = [];
    const commit = coordinator.store.commit.bind(coordinator.store);
    jest.spyOn(coordinator.store, 'commit').mockImplementation(async (id, token, write) => {
      written.push(write.changes.nodes.size);
      return commit(id, token, write);
    });
    await coordinator.orchestrator.submit(runId, { type: 'node_finished', result: outcomeOf(root!.data), at: Date.now() });
    await waitFor(() => coordinator.orchestrator.activeSessions === 0, 'the session ended');

    // The root's result with the first 100 leaves, then 100, then 50: no commit writes the whole fan-out.
    expect(written).toEqual([101, 101, 51]);
    const leafJobs = (await jobsOf()).filter((job) => job.data.nodeId !== 'root');
    expect(leafJobs).toHaveLength(leaves);
    expect(new Set(leafJobs.map((job) => job.data.nodeId)).size).toBe(leaves);
    expect(await coordinator.redis.xlen(coordinator.store.keys.inbox(runId))).toBe(0);
    expect(await coordinator.redis.xlen(coordinator.store.keys.outbox(runId))).toBe(0);
    const stored = await coordinator.store.nodes(runId, ['root', 'leaf0', `leaf${leaves - 1}`]);
    expect(stored.get('root')).toMatchObject({ status: 'succeeded' });
    expect(stored.get('root')).not.toHaveProperty('edgesResolved');
    expect([stored.get('leaf0')?.status, stored.get(`leaf${leaves - 1}`)?.status]).toEqual(['queued', 'queued']);
  });

  it('creating a run writes the records its start changed (its roots) and the :created field, not one per node; the rest are written as they change', async () => {
    const leaves = 50;
    const workflow = fanOut('lazy', leaves);
    const coordinator = start();
    const runId = await createdAndIdle(coordinator, 'r-lazy', workflow);
    const nodesKey = coordinator.store.keys.nodes(runId);
    expect((await coordinator.redis.hkeys(nodesKey)).sort()).toEqual([':created', 'root']);
    // An untouched node has no record, and reads as none (the engine takes it as pending).
    expect((await coordinator.store.nodes(runId, ['leaf0', 'root'])).has('leaf0')).toBe(false);

    for (let jobs = await coordinator.execQueue.getJobs(['waiting', 'prioritized'], 0, -1); jobs.length > 0; jobs = await coordinator.execQueue.getJobs(['waiting', 'prioritized'], 0, -1)) {
      for (const job of jobs) {
        await job.remove();
        await coordinator.orchestrator.submit(runId, { type: 'node_finished', result: outcomeOf(job.data), at: Date.now() });
      }
      await waitFor(() => coordinator.orchestrator.activeSessions === 0, 'the session ended');
    }
    expect(await coordinator.store.record(runId)).toMatchObject({ status: 'succeeded', open: 0 });
    const stored = await coordinator.store.nodes(runId, workflow.nodes.map((node) => node.id));
    expect(stored.size).toBe(leaves + 1);
    expect(new Set([...stored.values()].map((node) => node.status))).toEqual(new Set(['succeeded']));
  });

  it('a run whose node records are gone altogether cannot be read as all pending; a run from before the :created field reads as it did', async () => {
    const workflow = parseWorkflow({ id: 'gone', nodes: [{ id: 'a', language: 'python', code }, { id: 'b', language: 'python', code }], edges: [{ from: 'a', to: 'b' }] });
    const coordinator = start();
    const runId = await createdAndIdle(coordinator, 'r-gone', workflow);
    await coordinator.redis.del(coordinator.store.keys.nodes(runId));
    await expect(coordinator.store.nodes(runId, ['a', 'b'])).rejects.toThrow(`run ${runId} has no node records (no ${coordinator.store.keys.nodes(runId)})`);
    // Created before the field: every node it has has a record, and one it lacks is simply not there.
    await coordinator.redis.hset(coordinator.store.keys.nodes(runId), 'a', JSON.stringify({ status: 'succeeded', attempts: 1, timings: {}, waiting: 0, fired: 0 }));
    expect([...(await coordinator.store.nodes(runId, ['z'])).keys()]).toEqual([]);
    expect([...(await coordinator.store.nodes(runId, ['a', 'z'])).keys()]).toEqual(['a']);
  });

  it('a run with more roots than FANOUT_PAGE starts them a page per step: the creation writes the first page and the rest follow through its inbox', async () => {
    const workflow = parseWorkflow({ id: 'flat-pages', nodes: Array.from({ length: 250 }, (_, i) => ({ id: `n${i}`, language: 'python', code })) });
    const coordinator = start({ FANOUT_PAGE: '100' });
    const created: number[] = [];
    const written: number[] = [];
    const create = coordinator.store.create.bind(coordinator.store);
    jest.spyOn(coordinator.store, 'create').mockImplementation(async (run, inputs, nodes, commands, ...rest) => {
      created.push(commands.filter((command) => command.type === 'enqueue').length);
      return create(run, inputs, nodes, commands, ...rest);
    });
    const commit = coordinator.store.commit.bind(coordinator.store);
    jest.spyOn(coordinator.store, 'commit').mockImplementation(async (id, token, write) => {
      written.push(write.changes.commands.filter((command) => command.type === 'enqueue').length);
      return commit(id, token, write);
    });
    const runId = await createdAndIdle(coordinator, 'r-flat-pages', workflow);
    expect(created).toEqual([100]);
    expect(written).toEqual([100, 50]);
    const jobs = (await coordinator.execQueue.getJobs(['waiting', 'prioritized'], 0, -1)).filter((job) => job.data.runId === runId);
    expect(new Set(jobs.map((job) => job.data.nodeId)).size).toBe(250);
    expect(jobs).toHaveLength(250);
    expect(await coordinator.redis.xlen(coordinator.store.keys.inbox(runId))).toBe(0);
    expect(await coordinator.store.record(runId)).not.toHaveProperty('rootsStarted');
  });

  it('a run that ends with more nodes than FANOUT_PAGE cancels them a page per commit (the inbox carries the rest) and takes its terminal status with the last page', async () => {
    const nodes = 250;
    const workflow = parseWorkflow({ id: 'end-pages', nodes: Array.from({ length: nodes }, (_, i) => ({ id: `n${i}`, language: 'python', code })) });
    const coordinator = start({ FANOUT_PAGE: '100' });
    const runId = await createdAndIdle(coordinator, 'r-end-pages', workflow);
    const jobsOf = async () => (await coordinator.execQueue.getJobs(['waiting', 'prioritized', 'delayed'], 0, -1)).filter((job) => job.data.runId === runId);
    expect(await jobsOf()).toHaveLength(nodes);

    const written: Array<{ nodes: number; status: string }> = [];
    const commit = coordinator.store.commit.bind(coordinator.store);
    jest.spyOn(coordinator.store, 'commit').mockImplementation(async (id, token, write) => {
      written.push({ nodes: write.changes.nodes.size, status: write.changes.run.status });
      return commit(id, token, write);
    });
    const record = await coordinator.orchestrator.submitAndWait(runId, { type: 'cancel', at: Date.now(), reason: 'test' });
    expect(record).toMatchObject({ status: 'canceled', error: { code: 'CANCELED', message: 'test' } });
    expect(record).not.toHaveProperty('ending');
    // Two pages of 100 while the run is still running, then the last 50 with the terminal status.
    expect(written).toEqual([
      { nodes: 100, status: 'running' },
      { nodes: 100, status: 'running' },
      { nodes: 50, status: 'canceled' },
    ]);
    expect(await jobsOf()).toEqual([]);
    const stored = await coordinator.store.nodes(runId, ['n0', 'n150', `n${nodes - 1}`]);
    expect([...stored.values()].map((node) => [node.status, node.error?.message])).toEqual(Array(3).fill(['canceled', 'canceled: test']));
    const runEvents = (await coordinator.redis.xrange(coordinator.store.keys.events(runId), '-', '+')).map(([, fields]) => JSON.parse(fields[1]!) as { type: string; status?: string });
    // Every node's cancel is written before the run's terminal event (an event stream ends there).
    expect(runEvents.filter((event) => event.type === 'run').map((event) => event.status)).toEqual(['running', 'canceled']);
    expect(runEvents[runEvents.length - 1]).toMatchObject({ type: 'run', status: 'canceled' });
    expect(runEvents.filter((event) => event.type === 'node' && event.status === 'canceled')).toHaveLength(nodes);
    expect(await coordinator.redis.xlen(coordinator.store.keys.inbox(runId))).toBe(0);
    expect(await coordinator.redis.xlen(coordinator.store.keys.outbox(runId))).toBe(0);
    expect(await coordinator.admission.store.inFlight('t')).toBe(0);
  });

  it('a page of an end that cannot be applied (a record it cannot read) is skipped and the end goes on, instead of leaving the run ending', async () => {
    const nodes = 250;
    const workflow = parseWorkflow({ id: 'end-corrupt', nodes: Array.from({ length: nodes }, (_, i) => ({ id: `n${i}`, language: 'python', code })) });
    const coordinator = start({ FANOUT_PAGE: '100' });
    const runId = await createdAndIdle(coordinator, 'r-end-corrupt', workflow);
    // The second page holds a record that is not JSON.
    await coordinator.redis.hset(coordinator.store.keys.nodes(runId), 'n150', '{not json');
    const record = await coordinator.orchestrator.submitAndWait(runId, { type: 'cancel', at: Date.now(), reason: 'test' });
    expect(record).toMatchObject({ status: 'canceled', error: { code: 'CANCELED', message: 'test' } });
    expect(record).not.toHaveProperty('ending');
    expect(loggedErrors.splice(0)).toEqual([expect.stringContaining('event cannot be applied')]);
    const stored = await coordinator.store.nodes(runId, ['n99', 'n100', 'n199', 'n200', `n${nodes - 1}`]);
    // The first and the last page were canceled; the page with the record it cannot read stays as it was.
    expect([...stored.values()].map((node) => node.status)).toEqual(['canceled', 'queued', 'queued', 'canceled', 'canceled']);
    expect(await coordinator.redis.xlen(coordinator.store.keys.inbox(runId))).toBe(0);
  });

  it('a cancel whose end cannot read its first page (a record in it is not JSON) fails the run past that page, and cancels every execution its nodes may have', async () => {
    const workflow = parseWorkflow({ id: 'first-page', nodes: Array.from({ length: 5 }, (_, i) => ({ id: `n${i}`, language: 'python', code })) });
    const coordinator = start();
    const runId = await createdAndIdle(coordinator, 'r-first-page', workflow);
    const jobsOf = async () => (await coordinator.execQueue.getJobs(['waiting', 'prioritized', 'delayed'], 0, -1)).filter((job) => job.data.runId === runId);
    expect(await jobsOf()).toHaveLength(5);
    await coordinator.redis.hset(coordinator.store.keys.nodes(runId), 'n2', '{not json');
    const record = await coordinator.orchestrator.submitAndWait(runId, { type: 'cancel', at: Date.now(), reason: 'test' });
    expect(record).toMatchObject({ status: 'failed', error: { code: 'INTERNAL', message: expect.stringContaining('could not apply a cancel') } });
    expect(loggedErrors.splice(0)).toEqual([expect.stringContaining('event cannot be applied')]);
    // Not one record was read or written, yet no execution of the run is left to run.
    expect(await jobsOf()).toEqual([]);
    expect(await coordinator.admission.store.inFlight('t')).toBe(0);
    expect(await coordinator.redis.sismember(canceledSetKey(coordinator.config.QUEUE_PREFIX), `${runId}.n4.3`)).toBe(1);
    expect(await coordinator.redis.xlen(coordinator.store.keys.inbox(runId))).toBe(0);
    expect(await coordinator.redis.xlen(coordinator.store.keys.outbox(runId))).toBe(0);
  });

  it('an end_run behind a result the coordinator cannot read is not lost: an ending run reads nothing for the events it ignores, and its end goes on', async () => {
    // 250 roots, and n5 → x: a result of n5 would read x, whose record is not JSON (x is in the
    // end's last page, which is skipped for it).
    const roots = Array.from({ length: 250 }, (_, i) => ({ id: `n${i}`, language: 'python', code }));
    const workflow = parseWorkflow({ id: 'end-behind', nodes: [...roots, { id: 'x', language: 'python', code }], edges: [{ from: 'n5', to: 'x' }] });
    const coordinator = start({ FANOUT_PAGE: '100' });
    const runId = await createdAndIdle(coordinator, 'r-end-behind', workflow);
    const n5 = (await coordinator.execQueue.getJobs(['waiting', 'prioritized'], 0, -1)).find((job) => job.data.runId === runId && job.data.nodeId === 'n5')!;
    await coordinator.redis.hset(coordinator.store.keys.nodes(runId), 'x', '{not json');
    // The cancel's first page is committed while n5's result waits in the inbox: the next batch
    // is [n5's result, end_run].
    const stalled = stallNextCall(coordinator.store, 'commit');
    const canceled = coordinator.orchestrator.submitAndWait(runId, { type: 'cancel', at: Date.now(), reason: 'test' });
    await waitFor(stalled.reached, 'the first page is being committed');
    expect(await coordinator.orchestrator.submit(runId, { type: 'node_finished', result: outcomeOf(n5.data), at: Date.now() })).toBe('accepted');
    stalled.resume();
    await canceled;
    await waitFor(async () => (await coordinator.store.record(runId))?.status === 'canceled', 'the run ended');
    // One event could not be applied: the end's last page (x's), not n5's result.
    expect(loggedErrors.splice(0)).toEqual([expect.stringContaining('event cannot be applied')]);
    const stored = await coordinator.store.nodes(runId, ['n5', 'n100', 'n199', 'n200']);
    expect([...stored.values()].map((node) => node.status)).toEqual(['canceled', 'canceled', 'canceled', 'queued']);
    expect(await coordinator.redis.hget(coordinator.store.keys.nodes(runId), 'x')).toBe('{not json');
    expect(await coordinator.redis.xlen(coordinator.store.keys.inbox(runId))).toBe(0);
  });

  it('submitAndWait answers at its deadline even while its own process\'s session is still applying the run', async () => {
    const workflow = parseWorkflow({ id: 'wait-bound', nodes: [{ id: 'a', language: 'python', code }] });
    const coordinator = start();
    const runId = await createdAndIdle(coordinator, 'r-wait-bound', workflow);
    const stalled = stallNextCall(coordinator.store, 'commit');
    const began = Date.now();
    const answer = coordinator.orchestrator.submitAndWait(runId, { type: 'cancel', at: Date.now(), reason: 'test' }, 300);
    await waitFor(stalled.reached, 'the cancel is being committed');
    // The session is held up; the answer still comes at the deadline, with the run as it is then.
    expect(await answer).toMatchObject({ status: 'running' });
    expect(Date.now() - began).toBeLessThan(3_000);
    stalled.resume();
    await waitFor(async () => (await coordinator.store.record(runId))?.status === 'canceled', 'the run ended');
    await waitFor(() => coordinator.orchestrator.activeSessions === 0, 'the session ended');
  });

  it('a run whose end starts at its creation (a root\'s input binding fails, more nodes than a page) enqueues nothing: its enqueues are moot', async () => {
    const workflow = parseWorkflow({
      id: 'end-at-creation',
      // r0 is dispatched, then r1's binding fails: the end starts in the creation's own step.
      nodes: Array.from({ length: 6 }, (_, i) => ({ id: `r${i}`, language: 'python', code, ...(i === 1 ? { inputs: { v: '$error("no")' } } : {}) })),
    });
    const coordinator = start({ FANOUT_PAGE: '2' });
    const added = jest.spyOn(coordinator.execQueue, 'addBulk');
    const runId = await createdAndIdle(coordinator, 'r-end-at-creation', workflow);
    await waitFor(async () => (await coordinator.store.record(runId))?.status === 'failed', 'the run ended');
    await waitFor(() => coordinator.orchestrator.activeSessions === 0, 'the session ended');
    expect(await coordinator.store.record(runId)).toMatchObject({ status: 'failed', error: { code: 'INPUT_BINDING_FAILED', nodeId: 'r1' } });
    expect(added).not.toHaveBeenCalled();
    expect((await coordinator.execQueue.getJobs(['waiting', 'prioritized', 'delayed', 'active'], 0, -1)).filter((job) => job.data.runId === runId)).toEqual([]);
    expect(await coordinator.admission.store.inFlight('t')).toBe(0);
    expect(await coordinator.redis.xlen(coordinator.store.keys.outbox(runId))).toBe(0);
  });

  it('enqueues written with the first page of an end are moot: a node dispatched and canceled in one batch never reaches exec', async () => {
    const workflow = parseWorkflow({ id: 'end-moot', nodes: ['a', 'b', 'c', 'd', 'e'].map((id) => ({ id, language: 'python', code })), edges: [{ from: 'a', to: 'b' }] });
    const coordinator = start({ FANOUT_PAGE: '2' });
    const runId = await createdAndIdle(coordinator, 'r-end-moot', workflow);
    const jobsOf = async () => (await coordinator.execQueue.getJobs(['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'], 0, -1)).filter((job) => job.data.runId === runId);
    const a = (await jobsOf()).find((job) => job.data.nodeId === 'a')!;
    const added = jest.spyOn(coordinator.execQueue, 'addBulk');
    // One batch: a's result readies b, then the cancel starts a paged end.
    await coordinator.orchestrator.submit(runId, [
      { type: 'node_finished', result: outcomeOf(a.data), at: Date.now() },
      { type: 'cancel', at: Date.now(), reason: 'test' },
    ]);
    await waitFor(() => coordinator.orchestrator.activeSessions === 0, 'the session ended');
    expect(await coordinator.store.record(runId)).toMatchObject({ status: 'canceled' });
    expect(added).not.toHaveBeenCalled();
    expect((await jobsOf()).map((job) => job.data.nodeId)).toEqual(['a']);
    expect((await coordinator.store.nodes(runId, ['b'])).get('b')).toMatchObject({ status: 'canceled' });
    // a's own entry only: its results message (bypassed here) counts it out; b never took a place.
    expect(await coordinator.admission.store.inFlight('t')).toBe(1);
    expect(await coordinator.redis.xlen(coordinator.store.keys.outbox(runId))).toBe(0);
  });

  it('canceling a wide run cancels its executions a chunk at a time: every one in the canceled set, announced, its job removed and out of the in-flight count', async () => {
    const nodes = 2 * CANCEL_CHUNK + 100;
    const workflow = parseWorkflow({ id: 'wide-cancel', nodes: Array.from({ length: nodes }, (_, i) => ({ id: `n${i}`, language: 'python', code })) });
    // The end in one step: the chunks here are the executor's, not pages of the end.
    const coordinator = start({ FANOUT_PAGE: '1000000' });
    const runId = await createdAndIdle(coordinator, 'r-wide-cancel', workflow);
    const jobsOf = async () => (await coordinator.execQueue.getJobs(['waiting', 'prioritized', 'delayed'], 0, -1)).filter((job) => job.data.runId === runId);
    const executions = (await jobsOf()).map((job) => job.data.executionId);
    expect(executions).toHaveLength(nodes);
    expect(await coordinator.admission.store.inFlight('t')).toBe(nodes);

    const heard: string[] = [];
    const subscriber = coordinator.redis.duplicate();
    await subscriber.subscribe(cancelChannel(prefix));
    subscriber.on('message', (_channel, executionId: string) => heard.push(executionId));
    cleanups.push(async () => subscriber.disconnect());
    const sadds: number[] = [];
    const multi = coordinator.redis.multi.bind(coordinator.redis);
    jest.spyOn(coordinator.redis, 'multi').mockImplementation(((...args: unknown[]) => {
      const transaction = (multi as (...a: unknown[]) => ReturnType<Redis['multi']>)(...args);
      const sadd = transaction.sadd.bind(transaction);
      transaction.sadd = ((key: string, ...members: string[]) => {
        sadds.push(members.length);
        return sadd(key, ...members);
      }) as never;
      return transaction;
    }) as never);

    const record = await coordinator.orchestrator.submitAndWait(runId, { type: 'cancel', at: Date.now(), reason: 'test' });
    expect(record?.status).toBe('canceled');
    expect(sadds).toEqual([CANCEL_CHUNK, CANCEL_CHUNK, 100]);
    expect(await jobsOf()).toEqual([]);
    const canceled = await coordinator.redis.smismember(canceledSetKey(prefix), ...executions);
    expect(canceled.every((member) => member === 1)).toBe(true);
    await waitFor(() => heard.length === nodes, 'every cancel was announced');
    expect(new Set(heard)).toEqual(new Set(executions));
    expect(await coordinator.admission.store.inFlight('t')).toBe(0);
    expect(await coordinator.redis.xlen(coordinator.store.keys.outbox(runId))).toBe(0);
  });

  it('a cancel chunk that fails part-way acknowledges nothing, yet counts out the executions it removed; carried out again, every execution ends canceled', async () => {
    const nodes = CANCEL_CHUNK + 50;
    const workflow = parseWorkflow({ id: 'cancel-fails', nodes: Array.from({ length: nodes }, (_, i) => ({ id: `n${i}`, language: 'python', code })) });
    // The end is paged too: the first page cancels a chunk's worth, and the rest waits in the inbox.
    const coordinator = start({ FANOUT_PAGE: String(CANCEL_CHUNK) });
    const runId = await createdAndIdle(coordinator, 'r-cancel-fails', workflow);
    const jobsOf = async () => (await coordinator.execQueue.getJobs(['waiting', 'prioritized', 'delayed'], 0, -1)).filter((job) => job.data.runId === runId);
    const unlucky = executionIdOf(runId, 'n9', 1);
    const getJob = coordinator.execQueue.getJob.bind(coordinator.execQueue);
    const lookup = jest.spyOn(coordinator.execQueue, 'getJob').mockImplementation(async (id) => {
      if (id === unlucky) throw new Error('Redis hiccup');
      return getJob(id);
    });

    const ending = await coordinator.orchestrator.submitAndWait(runId, { type: 'cancel', at: Date.now(), reason: 'test' }, 1_000);
    // The session died carrying out the first page's cancels: the run is still ending.
    expect(ending).toMatchObject({ status: 'running', ending: { status: 'canceled', next: CANCEL_CHUNK } });
    expect(loggedErrors.splice(0)).toEqual([expect.stringContaining('Redis hiccup')]);
    // The first chunk's other 249 are out of the tenant's count; nothing was acknowledged.
    expect(await coordinator.admission.store.inFlight('t')).toBe(nodes - (CANCEL_CHUNK - 1));
    expect(await coordinator.redis.xlen(coordinator.store.keys.outbox(runId))).toBeGreaterThanOrEqual(CANCEL_CHUNK);
    expect(await coordinator.redis.xlen(coordinator.store.keys.inbox(runId))).toBe(1);

    // The session died with the lease held; once it is gone, whoever takes the run over carries the commands out again.
    lookup.mockRestore();
    await coordinator.redis.del(coordinator.store.keys.lease(runId));
    expect(await coordinator.orchestrator.takeOver(runId)).toBe(true);
    expect(await coordinator.store.record(runId)).toMatchObject({ status: 'canceled' });
    expect(await coordinator.store.record(runId)).not.toHaveProperty('ending');
    expect(await jobsOf()).toEqual([]);
    expect(await coordinator.admission.store.inFlight('t')).toBe(0);
    expect(await coordinator.redis.xlen(coordinator.store.keys.outbox(runId))).toBe(0);
    expect(await coordinator.redis.xlen(coordinator.store.keys.inbox(runId))).toBe(0);
    expect(loggedErrors).toEqual([]);
  });

  it('fair dispatch: a tenant at its cap moves on as its own results arrive, without waiting for a sweep', async () => {
    const cap = 4;
    let workerConnection: ReturnType<Redis['duplicate']> | undefined;
    // Sweeps far apart: only results may release held work here.
    const coordinator = start({ TENANT_MAX_IN_FLIGHT: String(cap), OUTBOX_SWEEP_MS: '600000' });
    const workflow = parseWorkflow({ id: 'flat', nodes: Array.from({ length: 40 }, (_, i) => ({ id: `n${i}`, language: 'python', code })) });
    let running = 0;
    let runningSeen = 0;
    const worker = new Worker<ExecJob>(
      QUEUE_NAMES.exec,
      async (job) => {
        runningSeen = Math.max(runningSeen, ++running);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running -= 1;
        // As ResultsProcessor does with a result message.
        await Promise.all([
          coordinator.orchestrator.submit(job.data.runId, { type: 'node_finished', result: outcomeOf(job.data), at: Date.now() }),
          coordinator.admission.store.finishedSoon(job.data.tenantId, [job.data.executionId]),
        ]);
        coordinator.sweeper.releaseSoon(job.data.tenantId);
      },
      { connection: (workerConnection = coordinator.redis.duplicate()), prefix: queuePrefix(prefix, QUEUE_NAMES.exec), concurrency: 8 },
    );
    try {
      const started = Date.now();
      const { id } = await coordinator.orchestrator.createRun({ id: 'capped', tenantId: 't', workflow, inputs: {} });
      for (;;) {
        const record = await coordinator.store.record(id);
        if (record?.status === 'succeeded') break;
        if (Date.now() - started > 20_000) throw new Error(`not finished in 20 s: ${record?.status}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(runningSeen).toBeLessThanOrEqual(cap);
      expect(runningSeen).toBeGreaterThan(1);
      expect(await coordinator.store.isHeld(id, 't')).toBe(false);
      expect(loggedErrors).toEqual([]);
    } finally {
      await worker.close();
      workerConnection?.disconnect();
    }
  }, 60_000);
});
