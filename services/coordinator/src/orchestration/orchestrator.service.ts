import { Inject, Injectable, Optional, type OnApplicationShutdown } from '@nestjs/common';
import { isTerminalRunPhase, type JsonObject } from '@podflow/protocol';
import {
  DEFAULT_EXPRESSION_LIMITS,
  applyEvents,
  createRunRecords,
  memorySource,
  nodesTouchedBy,
  type CompiledWorkflow,
  type EdgeResolution,
  type EngineEvent,
  type NodeRecord,
  type KeptParams,
  type RunChanges,
  type RunRecord,
  type RunSource,
  type TransitionOptions,
  type Workflow,
} from '@podflow/workflow';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { CONFIG, LOGGER } from '../tokens';
import { Admission } from './admission';
import { Definitions } from './definitions';
import { CoordinatorMetrics } from '../metrics/coordinator-metrics';
import type { NotifyTarget } from '../notify/notify-targets';
import { OutboxExecutor } from './outbox-executor';
import { RunCache } from './run-cache';
import { RunPayloads } from './run-payloads';
import { RunStore, type FirstBatch, type InboxEntry, type NextStep, type OutboxEntry } from './run-store';

export interface NewRun {
  id: string;
  tenantId: string;
  workflow: Workflow;
  workflowVersion?: number;
  inputs: JsonObject;
  idempotencyKey?: string;
  /** Where its terminal outcome goes (reply streams, webhooks); stored with the run. */
  notify?: readonly NotifyTarget[];
  /** Nodes it starts with as succeeded: a resumed run's kept nodes, a test run's upstream (@podflow/workflow `KeptParams`). */
  keep?: KeptParams;
}

/**
 * Fault injection for the crash tests (test/e2e/coordinator-crash): the process kills itself
 * with SIGKILL right after its Nth batch is committed, before it carries out the commands, the
 * worst moment to die. Never set in production.
 */
const KILL_AFTER_COMMITS = Number(process.env.PODFLOW_FAULT_KILL_AFTER_COMMITS ?? 0);

/** Errors that come back on every attempt with the same events: bad data, not a failing service. */
export function isUnapplicable(error: unknown): boolean {
  return error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError;
}

/**
 * Applies events to runs. Events go into the run's inbox (run-store `submit`); the coordinator
 * that holds the run's lease drains it in batches: it reads the run record and the records the
 * batch touches, applies the whole batch through the pure engine, writes the changes together
 * with the batch's acknowledgement (run-scripts COMMIT_BATCH), then carries out the outbox and
 * acknowledges each command by id. One drain loop ("session") per run at a time in the whole
 * deployment; different runs drain in parallel, so a hot run never holds up another.
 *
 * Crash at any point: before the commit nothing is written and the inbox still holds the batch;
 * after it, the outbox holds the commands. The lease expires, the sweeper (outbox-sweeper.ts)
 * finds the run in the active list and a live coordinator carries on from what is stored.
 */
@Injectable()
export class Orchestrator implements OnApplicationShutdown {
  /** This process's lease token: one session per run per process, so one token is enough. */
  readonly token = `${hostname()}:${process.pid}:${randomUUID()}`;
  private readonly options: TransitionOptions;
  private readonly sessions = new Map<string, Promise<void>>();
  private readonly rewoken = new Set<string>();
  /** Runs to take over, releasing, as soon as their session here ends (asked while it ran). */
  private readonly releaseQueued = new Set<string>();
  private readonly cache: RunCache;
  private commits = 0;
  private closing = false;

  constructor(
    private readonly store: RunStore,
    private readonly definitions: Definitions,
    private readonly executor: OutboxExecutor,
    private readonly admission: Admission,
    private readonly payloads: RunPayloads,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Optional() private readonly metrics?: CoordinatorMetrics,
  ) {
    this.cache = new RunCache(config.RUN_CACHE_MAX_BYTES);
    this.options = {
      expressionLimits: { maxBytes: config.EXPRESSION_MAX_BYTES, timeoutMs: config.EXPRESSION_TIMEOUT_MS, maxDepth: DEFAULT_EXPRESSION_LIMITS.maxDepth },
      edgePage: config.FANOUT_PAGE,
    };
  }

  /**
   * Creates and starts a run; its first executions are enqueued (or held by admission) before
   * this returns. Returns the run's id, or the existing run's for a known idempotency key.
   */
  async createRun(params: NewRun, now = Date.now()): Promise<{ id: string; created: boolean }> {
    const id = params.idempotencyKey ? await this.store.claimIdempotencyKey(params.tenantId, params.idempotencyKey, params.id) : params.id;
    // A key claimed by a request that died before creating its run is honoured by creating it now.
    if (id !== params.id && (await this.store.record(id))) return { id, created: false };
    // Independent writes, sent together (one round trip on a new run's path): the definition the
    // run references, the tenant's run list, and the active mark, which is set before `create` so
    // that a sweeper finds the run if this process dies before carrying out its first commands.
    const [compiled, , marked] = await Promise.all([this.definitions.put(params.workflow), this.store.listRun(params.tenantId, id, now, !params.keep?.test), this.store.markActiveReplacing(id, now)]);
    const mark = marked.score;
    let created: OutboxEntry[] | undefined;
    let createdOver = false;
    let writing = false;
    try {
      const { run, nodes } = createRunRecords(compiled, { id, tenantId: params.tenantId, workflowVersion: params.workflowVersion, now, keep: params.keep });
      const changes = await applyEvents(compiled, run, memorySource({ inputs: params.inputs, edges: [] }, nodes), [{ type: 'start', at: now }], this.options);
      await this.payloads.dehydrate(changes);
      // Only the records `start` changed and the kept ones are written: every other node is pending,
      // which a missing record means (RunSource), so creating a run costs its roots, not its size.
      const written = new Map(changes.nodes);
      for (const [nodeId, node] of nodes) if (node.status !== 'pending' && !written.has(nodeId)) written.set(nodeId, node);
      writing = true;
      created = await this.store.create(changes.run, params.inputs, written, changes.commands, this.token, params.notify);
      // A run that starts its end at creation (a root's input binding failed, with more nodes than
      // a page) has no run_finished in this outbox yet: its enqueues are moot all the same.
      createdOver = isOver(changes.run);
    } catch (error) {
      // The mark is this call's to clear only when nothing was written and it replaced no other
      // creation's mark (one with the same idempotency key). Otherwise it stays, and a sweeper
      // forgets it if no run was stored.
      if (!writing && !marked.replaced) await this.store.markIdle(id, mark).catch(() => undefined);
      throw error;
    }
    // Another creation with the same idempotency key stored the run first. A mark that replaced
    // the winner's stays (the winner may die before carrying out its first commands; a sweeper's
    // take-over of a run with nothing left to do is harmless); one that replaced none is cleared
    // (a winner that marked after it has its own score, which this leaves alone).
    if (!created) {
      if (!marked.replaced) await this.store.markIdle(id, mark);
      return { id, created: false };
    }
    await this.runSession(id, mark, false, undefined, undefined, { entries: created, runOver: createdOver });
    return { id, created: id === params.id };
  }

  /**
   * Hands an event to its run: durable once this returns. 'gone' when the run does not exist
   * (expired after RUN_RETENTION_SECONDS, or never created): the event is dropped and logged.
   *
   * The run is marked active (for the sweeper) along with the submit, and this returns only once
   * the mark is stored: if this process dies after taking the lease and before its session has
   * committed anything, the lease runs out and a sweeper takes over the events it left in the
   * inbox. A message whose submit never returned (a `results` job) is delivered again, and its
   * submit marks the run again. The mark sent with the submit is set only where none is (an
   * ending session's mark is left to it): it covers events queued behind a lease holder. A submit
   * that takes the lease always sets a mark of its own after it (MARK_ACTIVE), alongside its
   * session's first batch, even when the first one was set: on a Redis Cluster the mark and the
   * submit go to different nodes, so another coordinator's whole session may run between them,
   * replace the first mark and clear its own, leaving this session's commands unmarked. A caller
   * nothing delivers again (`redelivered: false`: a cancel through the API) marks the run before
   * its submit instead.
   */
  async submit(runId: string, events: EngineEvent | readonly EngineEvent[], { redelivered = true }: { redelivered?: boolean } = {}): Promise<'accepted' | 'gone'> {
    const list = Array.isArray(events) ? events : [events as EngineEvent];
    const now = Date.now();
    // The score of the mark this call set, if it set one.
    const marking = redelivered ? this.store.markActiveIfUnmarked(runId, now).then((set) => (set ? now : undefined)) : this.store.markActive(runId, now);
    if (!redelivered) await marking;
    // Sent together (on one Redis, the mark goes first on the same connection; on a Cluster each awaits its node).
    const [mark, submit] = await Promise.allSettled([marking, this.store.submit(runId, list, this.token, this.config.RESULTS_BATCH_MAX)]);
    if (submit.status === 'rejected') throw submit.reason; // nothing taken; a mark set is the sweeper's to forget
    const submitted = submit.value;
    const marked = mark.status === 'fulfilled' ? mark.value : undefined;
    if (submitted.outcome === 'gone') {
      if (marked !== undefined) await this.store.markIdle(runId, marked);
      this.logger.warn({ runId, events: list.map((e) => e.type) }, 'event for an unknown or expired run ignored');
      return 'gone';
    }
    if (submitted.outcome === 'owner') {
      // The lease is this process's now: its session starts at once and commits once this mark is
      // stored. If it fails, the caller's message is delivered again (its events are applied once),
      // and the session tries once more rather than leave the run to a sweep.
      const since = this.store.markActive(runId, Date.now());
      void this.runSession(runId, since.catch(() => this.store.markActive(runId, Date.now())), false, undefined, submitted.first);
      await since;
    }
    return 'accepted';
  }

  /** Submits an event and waits (up to `timeoutMs`) until this run has no event waiting; returns the run record then. */
  async submitAndWait(runId: string, event: EngineEvent, timeoutMs = 5_000): Promise<RunRecord | undefined> {
    if ((await this.submit(runId, event, { redelivered: false })) === 'gone') return undefined;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // This process's own session may drain for long (a paged end, and the results of the
      // executions it kills): the wait ends at the deadline all the same.
      const session = this.sessions.get(runId);
      if (session) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([session, new Promise((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))))]);
        clearTimeout(timer);
      }
      const pending = await this.store.inbox(runId, 1);
      if (pending.length === 0 || Date.now() > deadline) return this.store.record(runId);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /**
   * Takes over a run nobody holds (sweeper, admission): carries out its outbox and drains its
   * inbox. `releasing`: its turn after being held by admission (`heldBy`: its tenant).
   */
  async takeOver(runId: string, releasing = false, heldBy?: string): Promise<boolean> {
    if (this.closing) return false;
    const running = this.sessions.get(runId);
    if (running) {
      if (!releasing) return false;
      // Its session here (started by a result of this very run, typically) admits no held work:
      // the run is taken over, releasing, once it ends. Without this a run's own results could
      // never release it, and a tenant at its cap would move once per sweep.
      if (!this.releaseQueued.has(runId)) {
        this.releaseQueued.add(runId);
        void running
          .then(() => {
            this.releaseQueued.delete(runId);
            return this.takeOver(runId, true, heldBy);
          })
          .catch((error: unknown) => this.logger.error({ err: error, runId }, 'releasing a held run failed; the sweeper retries'));
      }
      return true;
    }
    if (!(await this.store.acquire(runId, this.token))) return false;
    await this.runSession(runId, undefined, releasing, heldBy);
    return true;
  }

  get activeSessions(): number {
    return this.sessions.size;
  }

  async onApplicationShutdown(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([...this.sessions.values()]);
  }

  /**
   * The drain loop of a run whose lease this process holds; one per run. A submit that takes the
   * lease while the loop is finishing (after its release, before it is gone from `sessions`)
   * cannot start a second loop, so it marks the run `rewoken` and the loop goes on: it checks the
   * mark after its last await and leaves `sessions` in the same synchronous step.
   */
  private runSession(runId: string, mark?: number | Promise<number>, releasing = false, heldBy?: string, first?: FirstBatch, created?: CreatedOutbox): Promise<void> {
    const running = this.sessions.get(runId);
    if (running) {
      // The batch read with the lease is not used: the running loop reads it again (NEXT_BATCH).
      this.rewoken.add(runId);
      return running;
    }
    const session = this.drain(runId, mark, releasing, heldBy, first, created);
    this.sessions.set(runId, session);
    return session;
  }

  /**
   * One session: mark the run active and carry out what its outbox holds (a dead owner's commands,
   * or ones admission held), then batch after batch: NEXT_BATCH (acknowledges what was carried
   * out, reads the next events or lets the lease go), apply, commit, carry out the commands the
   * commit wrote. Commands go out in outbox order: once admission holds one, later ones wait
   * behind it in the outbox (`flushOutbox`) instead of being carried out straight from the commit.
   *
   * `first`: the batch read with the lease (SUBMIT_EVENTS): with an empty outbox it is applied at
   * once. `mark`: the score of the run's mark, or the mark being set (its batch is applied
   * meanwhile); no batch is committed before the session's mark is stored. `created`: the
   * commands a creation wrote, the whole outbox of a run that did not exist before (only the
   * lease holder writes it), carried out as after a commit instead of read back, and whether the
   * run was over or ending with them.
   */
  private async drain(runId: string, mark: number | Promise<number> | undefined, releasing: boolean, heldBy?: string, first?: FirstBatch, created?: CreatedOutbox): Promise<void> {
    let since = mark;
    let ready = first?.outboxEmpty && !releasing ? first : undefined;
    let fresh = created;
    try {
      for (;;) {
        let held = false;
        let carriedOut: string[] = [];
        if (fresh) {
          const { done, held: heldNow, tenantId } = await this.executor.execute(runId, fresh.entries, Date.now(), releasing, fresh.runOver);
          carriedOut = done;
          if (heldNow > 0) {
            await this.hold(runId, tenantId!);
            held = true;
          }
          fresh = undefined;
        } else if (!ready) [since, held] = await Promise.all([since ?? this.store.markActive(runId, Date.now()), this.flushOutbox(runId, releasing, heldBy)]);
        else since ??= this.store.markActive(runId, Date.now());
        if (held) this.logger.debug({ runId }, 'executions held by admission');
        let outboxClear = !held;
        let lost = false;
        for (;;) {
          const step: NextStep = ready ? { kind: 'batch', ...ready } : await this.store.next(runId, this.token, this.config.RESULTS_BATCH_MAX, carriedOut);
          ready = undefined;
          carriedOut = [];
          if (step.kind === 'released') break;
          if (step.kind === 'lost') {
            lost = true;
            break;
          }
          if (!step.record) {
            // Its keys expired meanwhile; the sweeper forgets the run once its lease runs out.
            this.logger.warn({ runId, events: step.entries.length }, 'events for a run that expired meanwhile dropped');
            return;
          }
          const batch = await this.applyBatch(step.record, step.entries, since!);
          if (!batch) {
            lost = true;
            break;
          }
          const { written, runOver } = batch;
          if (!outboxClear) {
            outboxClear = !(await this.flushOutbox(runId, releasing, step.record.tenantId));
            continue;
          }
          const { done, held: heldNow } = await this.executor.execute(runId, written, Date.now(), releasing, runOver);
          carriedOut = done;
          if (heldNow > 0) {
            await this.hold(runId, step.record.tenantId);
            outboxClear = false;
          }
        }
        if (lost) {
          // The mark is left to the new owner. A submit of this process may have taken the lease
          // since (a stalled session whose batch another coordinator applied): the loop goes on
          // while this process holds it. No await between the last look at `rewoken` and leaving.
          this.leaseLost(runId);
          let holds = false;
          while (!holds && this.rewoken.delete(runId)) holds = await this.store.holdsLease(runId, this.token);
          if (!holds) return;
        } else {
          await this.store.markIdle(runId, await since!);
          // No await from here to the end of the loop body: a submit that took the lease meanwhile has set the mark.
          if (!this.rewoken.delete(runId)) return;
        }
        since = undefined;
      }
    } catch (error) {
      // The lease runs out and the sweeper hands the run to a live session, which starts over from what is stored.
      this.logger.error({ err: error, runId }, 'applying events failed; the run is retried after its lease expires');
    } finally {
      this.rewoken.delete(runId);
      this.sessions.delete(runId);
    }
  }

  private leaseLost(runId: string): void {
    this.logger.warn({ runId }, 'lease lost to another coordinator (or the batch applied by one) while this session stalled; nothing written');
  }

  /**
   * Carries out the outbox, acknowledging each command by id. Returns true when admission held
   * some back. `tenantId`, when known, names the held list to leave once nothing is held.
   */
  private async flushOutbox(runId: string, releasing: boolean, tenantId?: string): Promise<boolean> {
    for (;;) {
      const entries = await this.store.outbox(runId, 1000);
      if (entries.length === 0) {
        // A run released with nothing left to carry out (its outbox went meanwhile) leaves its list.
        if (releasing && tenantId) await this.store.unhold(runId, tenantId);
        return false;
      }
      // Enqueues may be moot: the run may be ending (its nodes are being canceled a page at a time) or
      // a full page may hide `run_finished` behind them. The record says whether the run is over.
      const runOver = entries.some((entry) => entry.command.type === 'enqueue') && !entries.some((entry) => entry.command.type === 'run_finished') && (await this.runIsOver(runId));
      const { done, held, tenantId: enqueuedFor } = await this.executor.execute(runId, entries, Date.now(), releasing, runOver);
      const tenant = enqueuedFor ?? tenantId;
      await this.store.ackOutbox(runId, done);
      if (held > 0) {
        await this.hold(runId, enqueuedFor!);
        return true;
      }
      if (entries.length < 1000) {
        // Out of the held list once everything went (a ZREM only while the tenant has held runs).
        if (tenant && (releasing || this.admission.waitingBefore(tenant))) await this.store.unhold(runId, tenant);
        return false;
      }
    }
  }

  /** Over, or ending (`RunRecord.ending`): its enqueues are moot either way. */
  private async runIsOver(runId: string): Promise<boolean> {
    const record = await this.store.record(runId);
    return record !== undefined && isOver(record);
  }

  /** The run waits in its tenant's held list; the tenant's new work queues behind it from now on. */
  private async hold(runId: string, tenantId: string): Promise<void> {
    this.admission.heldTenants.add(tenantId);
    await this.store.hold(runId, tenantId, Date.now());
  }

  /**
   * Applies one batch of inbox entries: the outbox entries the commit wrote and whether the run is
   * over (or ending) with it, or undefined when the lease was lost (nothing written). Commits once
   * `marked` (the session's mark) is stored.
   */
  private async applyBatch(record: RunRecord, entries: InboxEntry[], marked: number | Promise<number>): Promise<{ written: OutboxEntry[]; runOver: boolean } | undefined> {
    const applied = entries.map((entry) => entry.id);
    const compiled = await this.definitions.get(record.workflowHash);
    const events = entries.flatMap((entry) => (entry.event ? [entry.event] : []));
    if (events.length < entries.length) this.logger.error({ runId: record.id, dropped: entries.length - events.length }, 'inbox entries that hold no event dropped');
    let changes: RunChanges;
    try {
      changes = await this.applyEvents(compiled, record, events);
    } catch (error) {
      if (!isUnapplicable(error)) throw error;
      changes = await this.failOnUnapplicable(compiled, record, events, error as Error);
    }
    await this.payloads.dehydrate(changes);
    await marked;
    const written = await this.store.commit(record.id, this.token, { changes, applied });
    if (written) this.metrics?.resultsApplied.inc(entries.length);
    if (written) for (const [nodeId, node] of changes.nodes) this.cache.rememberNode(record.id, nodeId, node);
    if (written && KILL_AFTER_COMMITS > 0 && ++this.commits >= KILL_AFTER_COMMITS) process.kill(process.pid, 'SIGKILL');
    return written && { written, runOver: isOver(changes.run) };
  }

  /**
   * An event that throws the same way on every attempt (malformed data) must not hold up its
   * run until RUN_TIMEOUT: the batch is applied up to that event (found by bisection; a prefix
   * that applies is all that goes in), and the run fails with INTERNAL naming the event.
   */
  private async failOnUnapplicable(compiled: CompiledWorkflow, record: RunRecord, events: EngineEvent[], error: Error): Promise<RunChanges> {
    let applies = 0;
    let fails = events.length;
    while (fails - applies > 1) {
      const middle = (applies + fails) >> 1;
      try {
        await this.applyEvents(compiled, record, events.slice(0, middle));
        applies = middle;
      } catch (again) {
        if (!isUnapplicable(again)) throw again;
        fails = middle;
      }
    }
    const bad = events[applies]!;
    this.logger.error({ err: error, runId: record.id, event: bad.type }, 'event cannot be applied; failing its run');
    const why = `${error.name}: ${error.message}`;
    const message = `podflow could not apply ${subjectOf(bad)} to run ${record.id} (${why.slice(0, 500)}); the run was failed instead of waiting for its timeout`;
    // A page of the run's own end that cannot be applied is skipped (endPage); on a run that is
    // ending, any other event's failure only asks for the end's next page again (the events after
    // the bad one, an end_run among them, are not applied).
    const fail: EngineEvent & { type: 'fail' } = { type: 'fail', at: Date.now(), error: { code: 'INTERNAL', message }, ...(bad.type === 'end_run' ? { endPage: bad.from } : {}) };
    try {
      return await this.applyEvents(compiled, record, [...events.slice(0, applies), fail]);
    } catch (again) {
      // The end this fail starts cannot read its first page either (the records the bad event
      // could not read are in it, or all of them are lost): the end starts past that page.
      if (!isUnapplicable(again) || fail.endPage !== undefined) throw again;
      return this.applyEvents(compiled, record, [...events.slice(0, applies), { ...fail, endPage: 0 }]);
    }
  }

  private async applyEvents(compiled: CompiledWorkflow, record: RunRecord, events: EngineEvent[]): Promise<RunChanges> {
    const source = new StoredRunSource(this.store, this.payloads, this.cache, record);
    // What the batch surely reads, in one round trip (nothing for events the run ignores); the
    // engine loads anything else on demand.
    await source.nodes(nodesTouchedBy(compiled, events, this.options.edgePage, record));
    const prepared: EngineEvent[] = [];
    for (const event of events) {
      const node = event.type === 'node_finished' ? source.cached(event.result.nodeId) : undefined;
      prepared.push(await this.payloads.prepareEvent(record, node, event));
    }
    return applyEvents(compiled, record, source, prepared, this.options);
  }
}

/** The commands a run's creation wrote, and whether it was over or ending with them. */
interface CreatedOutbox {
  entries: OutboxEntry[];
  runOver: boolean;
}

/** Finished, or ending a page at a time (RunRecord.ending): every node is, or will be, canceled. */
function isOver(run: RunRecord): boolean {
  return isTerminalRunPhase(run.status) || run.ending !== undefined;
}

/** What an event is about, for messages. */
function subjectOf(event: EngineEvent): string {
  switch (event.type) {
    case 'node_finished':
      return `the result of execution ${event.result?.executionId}`;
    case 'node_started':
      return `the start of execution ${event.executionId}`;
    case 'run_timeout':
      return 'its timeout';
    case 'cancel':
      return 'a cancel';
    case 'start':
      return 'its start';
    case 'resolve_edges':
      return `the rest of node ${JSON.stringify(event.nodeId)}'s outgoing edges`;
    case 'start_roots':
      return 'the rest of its roots';
    case 'end_run':
      return 'the rest of its end';
    case 'fail':
      return 'a failure';
  }
}

/**
 * Reads a run's records for one batch, each record once: what the coordinator's RunCache holds
 * (inputs, succeeded nodes) from memory, the rest from Redis with outputs kept by reference loaded.
 */
class StoredRunSource implements RunSource {
  private readonly loaded = new Map<string, NodeRecord>();
  /** Nodes read and found without a record (untouched, so pending): not read again in this batch. */
  private readonly absent = new Set<string>();
  private inputsRead?: Promise<JsonObject>;

  constructor(
    private readonly store: RunStore,
    private readonly payloads: RunPayloads,
    private readonly cache: RunCache,
    private readonly run: RunRecord,
  ) {}

  cached(nodeId: string): NodeRecord | undefined {
    return this.loaded.get(nodeId);
  }

  async nodes(ids: readonly string[]): Promise<ReadonlyMap<string, NodeRecord>> {
    const missing: string[] = [];
    for (const id of ids) {
      if (this.loaded.has(id) || this.absent.has(id)) continue;
      const final = this.cache.node(this.run.id, id);
      if (final) this.loaded.set(id, final);
      else missing.push(id);
    }
    if (missing.length > 0) {
      const stored = await this.store.nodes(this.run.id, missing);
      for (const id of missing) if (!stored.has(id)) this.absent.add(id);
      if (this.run.ending) {
        // An ending run's pages look at each node's status and execution only: an output kept by
        // reference is not loaded (nor the record cached without it).
        for (const [id, node] of stored) this.loaded.set(id, node as NodeRecord);
      } else {
        await Promise.all(
          [...stored].map(async ([id, node]) => {
            const record = await this.payloads.hydrateNode(this.run, id, node as NodeRecord);
            this.loaded.set(id, record);
            this.cache.rememberNode(this.run.id, id, record);
          }),
        );
      }
    }
    return new Map(ids.flatMap((id) => (this.loaded.has(id) ? [[id, this.loaded.get(id)!] as const] : [])));
  }

  edges(indexes: readonly number[]): Promise<ReadonlyMap<number, EdgeResolution>> {
    return this.store.edges(this.run.id, indexes);
  }

  inputs(): Promise<JsonObject> {
    this.inputsRead ??= this.readInputs();
    return this.inputsRead;
  }

  private async readInputs(): Promise<JsonObject> {
    const cached = this.cache.inputs(this.run.id);
    if (cached) return cached;
    const { inputs, bytes } = await this.store.inputsWithSize(this.run.id);
    this.cache.rememberInputs(this.run.id, inputs, bytes);
    return inputs;
  }
}
