import { Inject, Injectable } from '@nestjs/common';
import { PodflowError, isTerminalRunPhase, runEventsChannel, type JsonObject, type RunEventMessage } from '@podflow/protocol';
import type { EdgeResolution, EngineCommand, EngineEvent, NodeRecord, NodeState, RunChanges, RunRecord } from '@podflow/workflow';
import type { RedisClient } from '@podflow/redis';
import type { CoordinatorConfig } from '../config';
import { CONFIG, STATE_REDIS } from '../tokens';
import { NODES_CREATED_FIELD, RunKeys } from './run-keys';
import { MAX_NOTIFY_TARGETS, parseTargets, storedTargets, type NotifyTarget } from '../notify/notify-targets';
import { ADD_NOTIFY_TARGETS, COMMIT_BATCH, CREATE_RUN, NEXT_BATCH, NOTE_SUCCEEDED, MARK_ACTIVE, SUBMIT_EVENTS, ZREM_IF_OLDER, ZREM_IF_SCORE } from './run-scripts';

/** Entries of a run's event stream read per XRANGE. */
const EVENT_PAGE = 200;

/** Outbox entries acknowledged per XDEL (each holds Redis up for everyone while it runs). */
const ACK_CHUNK = 250;

/**
 * Commands that wait in the outbox; `emit` never does: events are written by the same script.
 * `run_finished` is the coordinator's own: written with the batch that ends the run, it hands
 * the outcome to the run's notify targets (notify/run-notifier.ts), so a crash after that
 * commit still delivers it.
 */
export type OutboxCommand = Exclude<EngineCommand, { type: 'emit' } | FollowUp> | { type: 'run_finished' };

/** Commands that are events for the run itself (the rest of a wide fan-out, of many roots or of a run's end): written to its inbox. */
type FollowUp = Extract<EngineCommand, { type: 'resolve_edges' | 'start_roots' | 'end_run' }>;

const FOLLOW_UPS: ReadonlySet<EngineCommand['type']> = new Set<FollowUp['type']>(['resolve_edges', 'start_roots', 'end_run']);
const isFollowUp = (command: EngineCommand): command is FollowUp => FOLLOW_UPS.has(command.type);

export interface OutboxEntry {
  id: string;
  command: OutboxCommand;
}

export interface InboxEntry {
  id: string;
  /** Undefined when the entry holds no readable event (it is acknowledged and skipped). */
  event: EngineEvent | undefined;
}

export interface StoredEvent {
  /** Redis stream id, usable as SSE `Last-Event-ID`. */
  id: string;
  event: RunEventMessage;
}

/** A node record as stored: the engine's record without its logs (kept apart, never read by a transition). */
export type StoredNode = Omit<NodeRecord, 'logs'>;

/** What NEXT_BATCH found: the lease lost, the lease let go (no event waits), or the next batch. */
export type NextStep = { kind: 'lost' } | { kind: 'released' } | { kind: 'batch'; record: RunRecord | undefined; entries: InboxEntry[] };

/** A batch read together with the lease that makes the reader its one applier. */
export interface FirstBatch {
  record: RunRecord | undefined;
  entries: InboxEntry[];
  /** Nothing waits in the outbox (no dead owner's or held commands to carry out first). */
  outboxEmpty: boolean;
}

/** What `submit` did with the events. */
export type Submitted = { outcome: 'gone' } | { outcome: 'queued' } | { outcome: 'owner'; first: FirstBatch };

/** Everything a batch writes, already made small enough for Redis (run-payloads.ts). */
export interface BatchWrite {
  changes: RunChanges;
  /** Inbox entries the batch applied (deleted by the same script). */
  applied: string[];
}

/**
 * Run state in Redis, one set of keys per run (run-keys.ts): the run record, node records, edge
 * resolutions, logs, the event stream, an inbox of events to apply and an outbox of commands to
 * carry out, plus the lease that names the one coordinator applying the inbox (run-scripts.ts).
 */
@Injectable()
export class RunStore {
  readonly keys: RunKeys;

  constructor(
    @Inject(STATE_REDIS) private readonly redis: RedisClient,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {
    this.keys = new RunKeys(config.QUEUE_PREFIX);
  }

  get leaseMs(): number {
    return this.config.RUN_LEASE_MS;
  }

  /**
   * Stores a definition by hash, or only extends its life when `known` (compiled here before, so
   * most likely stored) and Redis still has it. A definition lives as long as the runs that
   * reference it may: their longest life plus retention. A plain SET, not a script: the key is its
   * content's hash, so writing it again changes nothing, and a megabyte handed to Lua costs Redis
   * ~1.4 ms (every client waits meanwhile) where SET takes microseconds.
   */
  async putDefinition(hash: string, json: string, known: boolean): Promise<void> {
    const key = this.keys.definition(hash);
    const ttl = this.config.RUN_RETENTION_SECONDS + 2 * 24 * 3600;
    if (known && (await this.redis.expire(key, ttl)) === 1) return;
    await this.redis.set(key, json, 'EX', ttl);
  }

  async getDefinition(hash: string): Promise<string | undefined> {
    return (await this.redis.get(this.keys.definition(hash))) ?? undefined;
  }

  /**
   * Creates a run with its first transition applied and its lease held by `token`. Returns the
   * outbox entries it wrote (for the creator to carry out without reading them back), or undefined
   * when the run exists already.
   */
  async create(run: RunRecord, inputs: JsonObject, nodes: Map<string, NodeRecord>, commands: EngineCommand[], token: string, notify: readonly NotifyTarget[] = []): Promise<OutboxEntry[] | undefined> {
    const { events, outbox, follow } = splitCommands(commands);
    const k = this.keys;
    const args: Array<string | number> = [JSON.stringify(run), JSON.stringify(inputs), token, this.leaseMs, runEventsChannel(k.prefix, run.id), nodes.size + 1, NODES_CREATED_FIELD, run.createdAt];
    for (const [id, node] of nodes) args.push(id, JSON.stringify(storedNode(node)));
    args.push(events.length, ...events.map((e) => JSON.stringify(e)), outbox.length, ...outbox.map((c) => JSON.stringify(c)));
    args.push(notify.length > 0 ? JSON.stringify(storedTargets(notify)) : '', isTerminalRunPhase(run.status) ? '1' : '0', this.config.RUN_RETENTION_SECONDS);
    args.push(follow.length, ...follow.map((e) => JSON.stringify(e)));
    const created = await CREATE_RUN.run(this.redis, [k.run(run.id), k.nodes(run.id), k.events(run.id), k.outbox(run.id), k.lease(run.id), k.inbox(run.id)], args);
    if (!Array.isArray(created)) return undefined;
    const ids = created.slice(1) as string[];
    return outbox.map((command, index) => ({ id: ids[index]!, command }));
  }

  /**
   * Appends events to the run's inbox, in order. 'owner' when this caller took the lease, with
   * the first batch to apply (`first`, read by the same script: up to `batchMax` inbox entries and
   * the run record, and whether the outbox is empty); 'queued' when another holds it; 'gone' for
   * no such run.
   */
  async submit(runId: string, events: readonly EngineEvent[], token: string, batchMax: number): Promise<Submitted> {
    const k = this.keys;
    const reply = await SUBMIT_EVENTS.run(this.redis, [k.run(runId), k.inbox(runId), k.lease(runId), k.outbox(runId)], [token, this.leaseMs, batchMax, ...events.map((e) => JSON.stringify(e))]);
    if (reply === -1) return { outcome: 'gone' };
    if (reply === 0) return { outcome: 'queued' };
    const [rec, entries, outboxLength] = reply as [string, Array<[string, string[]]>, number];
    return { outcome: 'owner', first: { record: rec ? (JSON.parse(rec) as RunRecord) : undefined, entries: entries.map(inboxEntry), outboxEmpty: outboxLength === 0 } };
  }

  /** Whether `token` holds the run's lease now. */
  async holdsLease(runId: string, token: string): Promise<boolean> {
    return (await this.redis.get(this.keys.lease(runId))) === token;
  }

  /** Takes a free lease (the sweeper and admission use it for runs nobody is working on). */
  async acquire(runId: string, token: string): Promise<boolean> {
    return (await this.redis.set(this.keys.lease(runId), token, 'PX', this.leaseMs, 'NX')) === 'OK';
  }

  /**
   * The lease holder's next step (NEXT_BATCH): acknowledges `carriedOut` outbox entries, then reads
   * up to `count` inbox entries with the run record, or lets the lease go when none wait.
   */
  async next(runId: string, token: string, count: number, carriedOut: readonly string[] = []): Promise<NextStep> {
    const k = this.keys;
    // Thousands of ids (a fan-out's enqueues) are acknowledged ahead, ACK_CHUNK per XDEL: one
    // script deleting them all held Redis up for everyone (~20 ms for 10,000). Acknowledging a
    // command that was carried out needs no lease (it is done, whoever owns the run now).
    const last = Math.max(0, carriedOut.length - ACK_CHUNK);
    for (let first = 0; first < last; first += ACK_CHUNK) await this.redis.xdel(k.outbox(runId), ...carriedOut.slice(first, Math.min(first + ACK_CHUNK, last)));
    const reply = await NEXT_BATCH.run(this.redis, [k.run(runId), k.inbox(runId), k.outbox(runId), k.lease(runId)], [token, this.leaseMs, count, ...carriedOut.slice(last)]);
    if (reply === -1) return { kind: 'lost' };
    if (reply === 0) return { kind: 'released' };
    const [rec, entries] = reply as [string, Array<[string, string[]]>];
    return { kind: 'batch', record: rec ? (JSON.parse(rec) as RunRecord) : undefined, entries: entries.map(inboxEntry) };
  }

  /**
   * Adds notify targets to an existing run (those it has already count as added).
   * @throws PodflowError CONFLICT when the run has MAX_NOTIFY_TARGETS others, NOT_FOUND when it does not exist.
   */
  async addNotifyTargets(runId: string, targets: readonly NotifyTarget[]): Promise<RunRecord> {
    const reply = (await ADD_NOTIFY_TARGETS.run(this.redis, [this.keys.run(runId)], [MAX_NOTIFY_TARGETS, JSON.stringify(storedTargets(targets))])) as [string, number] | null;
    if (!reply) throw new PodflowError('NOT_FOUND', `run "${runId}" no longer exists (past RUN_RETENTION_SECONDS)`);
    if (reply[1] > 0) {
      throw new PodflowError('CONFLICT', `run "${runId}" already sends its completion to ${MAX_NOTIFY_TARGETS} targets (reply streams, webhooks), the most one run has; submit with another idempotencyKey for a run of your own`);
    }
    return JSON.parse(reply[0]) as RunRecord;
  }

  /** The run's record and notify targets, in one read. */
  async recordWithTargets(runId: string): Promise<{ record: RunRecord | undefined; targets: NotifyTarget[] }> {
    const [rec, notify] = await this.redis.hmget(this.keys.run(runId), 'rec', 'notify');
    return { record: rec ? (JSON.parse(rec) as RunRecord) : undefined, targets: parseTargets(notify) };
  }

  /** Whether the run is stored (not expired, and written by its creation): no record read or parsed. */
  async exists(runId: string): Promise<boolean> {
    return (await this.redis.hexists(this.keys.run(runId), 'rec')) === 1;
  }

  async record(runId: string): Promise<RunRecord | undefined> {
    const raw = await this.redis.hget(this.keys.run(runId), 'rec');
    return raw ? (JSON.parse(raw) as RunRecord) : undefined;
  }

  async inputs(runId: string): Promise<JsonObject> {
    return (await this.inputsWithSize(runId)).inputs;
  }

  /** The run's inputs and the size of their JSON. */
  async inputsWithSize(runId: string): Promise<{ inputs: JsonObject; bytes: number }> {
    const raw = await this.redis.hget(this.keys.run(runId), 'inputs');
    return raw ? { inputs: JSON.parse(raw) as JsonObject, bytes: raw.length } : { inputs: {}, bytes: 2 };
  }

  /**
   * The stored records of `ids`. A node without one is pending (nothing has touched it yet). A run
   * whose records are gone altogether (no nodes hash: its creation wrote NODES_CREATED_FIELD)
   * throws a TypeError: its records cannot be read, as when one is corrupt. A run created before
   * that field has a record of every node it has.
   */
  async nodes(runId: string, ids: readonly string[]): Promise<Map<string, StoredNode>> {
    const found = new Map<string, StoredNode>();
    if (ids.length === 0) return found;
    const key = this.keys.nodes(runId);
    const raw = await this.redis.hmget(key, NODES_CREATED_FIELD, ...ids);
    ids.forEach((id, index) => {
      const json = raw[index + 1];
      if (json) found.set(id, JSON.parse(json) as StoredNode);
    });
    if (found.size === 0 && !raw[0] && (await this.redis.exists(key)) === 0) {
      throw new TypeError(`run ${runId} has no node records (no ${key}): they were lost from Redis`);
    }
    return found;
  }

  async logs(runId: string, ids: readonly string[]): Promise<Map<string, NodeState['logs']>> {
    const found = new Map<string, NodeState['logs']>();
    if (ids.length === 0) return found;
    const raw = await this.redis.hmget(this.keys.logs(runId), ...ids);
    ids.forEach((id, index) => {
      if (raw[index]) found.set(id, JSON.parse(raw[index]!) as NodeState['logs']);
    });
    return found;
  }

  async edges(runId: string, indexes: readonly number[]): Promise<Map<number, EdgeResolution>> {
    const found = new Map<number, EdgeResolution>();
    if (indexes.length === 0) return found;
    const raw = await this.redis.hmget(this.keys.edges(runId), ...indexes.map(String));
    indexes.forEach((index, i) => found.set(index, raw[i] === 'f' ? 'fired' : raw[i] === 'n' ? 'not_fired' : 'pending'));
    return found;
  }

  /** Up to `count` events waiting in the inbox, oldest first. */
  async inbox(runId: string, count: number): Promise<InboxEntry[]> {
    const entries = await this.redis.xrange(this.keys.inbox(runId), '-', '+', 'COUNT', count);
    return entries.map(inboxEntry);
  }

  /**
   * Writes a batch if `token` still holds the lease: the outbox entries it wrote (to carry out
   * now), or undefined when another coordinator took over (nothing written).
   */
  async commit(runId: string, token: string, write: BatchWrite): Promise<OutboxEntry[] | undefined> {
    const { changes, applied } = write;
    const { events, outbox, follow } = splitCommands(changes.commands);
    const k = this.keys;
    const terminal = isTerminalRunPhase(changes.run.status);
    const args: Array<string | number> = [token, this.leaseMs, runEventsChannel(k.prefix, runId), terminal ? '1' : '0', this.config.RUN_RETENTION_SECONDS, changes.runChanged ? JSON.stringify(changes.run) : ''];
    args.push(changes.nodes.size);
    const logs: Array<[string, string]> = [];
    for (const [id, node] of changes.nodes) {
      args.push(id, JSON.stringify(storedNode(node)));
      if (node.logs) logs.push([id, JSON.stringify(node.logs)]);
    }
    args.push(logs.length, ...logs.flat());
    args.push(changes.edges.size);
    for (const [index, resolution] of changes.edges) args.push(String(index), resolution === 'fired' ? 'f' : 'n');
    args.push(applied.length, ...applied);
    args.push(events.length, ...events.map((e) => JSON.stringify(e)), outbox.length, ...outbox.map((c) => JSON.stringify(c)));
    args.push(follow.length, ...follow.map((e) => JSON.stringify(e)));
    const written = await COMMIT_BATCH.run(this.redis, [k.run(runId), k.nodes(runId), k.logs(runId), k.edges(runId), k.events(runId), k.outbox(runId), k.inbox(runId), k.lease(runId)], args);
    if (!Array.isArray(written)) return undefined;
    const ids = written.slice(1) as string[];
    return outbox.map((command, index) => ({ id: ids[index]!, command }));
  }

  async outbox(runId: string, count = 1000): Promise<OutboxEntry[]> {
    const entries = await this.redis.xrange(this.keys.outbox(runId), '-', '+', 'COUNT', count);
    const parsed: OutboxEntry[] = [];
    for (const [id, fields] of entries) {
      const command = parseJsonField<OutboxCommand>(fields, (v) => typeof v === 'object' && v !== null);
      // An entry that is not a command can never be carried out: acknowledged with the rest.
      parsed.push({ id, command: command ?? ({ type: 'invalid' } as unknown as OutboxCommand) });
    }
    return parsed;
  }

  /** Acknowledges carried-out commands by id: entries written meanwhile stay. */
  async ackOutbox(runId: string, ids: readonly string[]): Promise<void> {
    if (ids.length > 0) await this.redis.xdel(this.keys.outbox(runId), ...ids);
  }

  /** Marks a run as being worked on; returns the mark's score, for `markIdle` (now, or one past the mark it replaced: MARK_ACTIVE). */
  async markActive(runId: string, now: number): Promise<number> {
    return (await this.markActiveReplacing(runId, now)).score;
  }

  /** `markActive`, also saying whether the mark replaced another (whose owner then has none). */
  async markActiveReplacing(runId: string, now: number): Promise<{ score: number; replaced: boolean }> {
    const [score, replaced] = (await MARK_ACTIVE.run(this.redis, [this.keys.activeRuns()], [runId, String(now)])) as [number, number];
    return { score: Number(score), replaced: replaced === 1 };
  }

  /** Marks a run as being worked on unless it is marked already: true when this call set the mark (score = now). */
  async markActiveIfUnmarked(runId: string, now: number): Promise<boolean> {
    return (await this.redis.zadd(this.keys.activeRuns(), 'NX', now, runId)) === 1;
  }

  /** Clears the mark unless a newer owner set its own since. */
  async markIdle(runId: string, score: number): Promise<void> {
    await ZREM_IF_SCORE.run(this.redis, [this.keys.activeRuns()], [runId, String(score)]);
  }

  /** Runs marked active since before `before`: their owner may have died. */
  async staleRuns(before: number, limit = 100, offset = 0): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.activeRuns(), '-inf', before, 'LIMIT', offset, limit);
  }

  /** Puts a run in the held list (FIFO by when it first waited) until admission lets its executions go. */
  /** The run waits for admission in its tenant's held list (kept at its first time there). */
  async hold(runId: string, tenantId: string, now: number): Promise<void> {
    // The run first, then its tenant: forgetHeldTenant's second look then always sees the run
    // (on a Redis Cluster the two keys live on different nodes, so they are not sent together).
    await this.redis.zadd(this.keys.heldRuns(tenantId), 'NX', now, runId);
    await this.redis.zadd(this.keys.heldTenants(), 'NX', now, tenantId);
  }

  async unhold(runId: string, tenantId: string): Promise<void> {
    await this.redis.zrem(this.keys.heldRuns(tenantId), runId);
  }

  async isHeld(runId: string, tenantId: string): Promise<boolean> {
    return (await this.redis.zscore(this.keys.heldRuns(tenantId), runId)) !== null;
  }

  /** A tenant's runs waiting longest for admission, with when each first waited. */
  async heldRunsWithTimes(tenantId: string, limit: number): Promise<Array<{ runId: string; since: number }>> {
    const flat = await this.redis.zrange(this.keys.heldRuns(tenantId), 0, limit - 1, 'WITHSCORES');
    const runs: Array<{ runId: string; since: number }> = [];
    for (let i = 0; i < flat.length; i += 2) runs.push({ runId: flat[i]!, since: Number(flat[i + 1]) });
    return runs;
  }

  /** A tenant's runs waiting longest for admission. */
  async heldRuns(tenantId: string, limit: number): Promise<string[]> {
    return this.redis.zrange(this.keys.heldRuns(tenantId), 0, limit - 1);
  }

  /** Tenants with held runs (possibly a few whose lists emptied since: `forgetHeldTenant`). */
  async heldTenants(): Promise<string[]> {
    return this.redis.zrange(this.keys.heldTenants(), 0, -1);
  }

  /**
   * Drops a tenant whose held list is empty from the held tenants; one held meanwhile by another
   * coordinator is put back (its hold's ZADD NX may have come between the two steps). Returns
   * whether the tenant has no held runs.
   */
  async forgetHeldTenant(tenantId: string, now: number): Promise<boolean> {
    if ((await this.redis.zcard(this.keys.heldRuns(tenantId))) > 0) return false;
    await this.redis.zrem(this.keys.heldTenants(), tenantId);
    if ((await this.redis.zcard(this.keys.heldRuns(tenantId))) === 0) return true;
    await this.redis.zadd(this.keys.heldTenants(), 'NX', now, tenantId);
    return false;
  }

  /** Runs held by a coordinator from before per-tenant held lists (upgrades). */
  async legacyHeldRuns(limit: number): Promise<string[]> {
    return this.redis.zrange(this.keys.legacyHeldRuns(), 0, limit - 1);
  }

  async forgetLegacyHeld(runId: string): Promise<void> {
    await this.redis.zrem(this.keys.legacyHeldRuns(), runId);
  }

  /**
   * Forgets the mark of a run that has no record, once the mark is from before `before`: a
   * creation marks its run before it writes it, so a younger mark may belong to a creation still
   * under way (forgotten, and that creator dying right after writing, its run would have no mark).
   * Returns whether it was forgotten.
   */
  async forgetActiveIfOlder(runId: string, before: number): Promise<boolean> {
    return (await ZREM_IF_OLDER.run(this.redis, [this.keys.activeRuns()], [runId, String(before)])) === 1;
  }

  /**
   * The run's events after `afterId` (exclusive; `-` from the start) up to `untilId` (inclusive),
   * read EVENT_PAGE at a time (a long run's history is never one reply). Entries that hold no
   * event are skipped.
   */
  async *events(runId: string, afterId = '-', untilId = '+'): AsyncGenerator<StoredEvent> {
    let start = afterId === '-' ? '-' : `(${afterId}`;
    for (;;) {
      const entries = await this.redis.xrange(this.keys.events(runId), start, untilId, 'COUNT', EVENT_PAGE);
      for (const [id, fields] of entries) {
        const event = parseStoredEvent(fields);
        if (event) yield { id, event };
      }
      if (entries.length < EVENT_PAGE) return;
      start = `(${entries.at(-1)![0]}`;
    }
  }

  /** The run's latest event, or undefined when its stream is empty or gone. */
  async lastEvent(runId: string): Promise<StoredEvent | undefined> {
    const [entry] = await this.redis.xrevrange(this.keys.events(runId), '+', '-', 'COUNT', 1);
    if (!entry) return undefined;
    return { id: entry[0], event: parseStoredEvent(entry[1]) ?? ({} as RunEventMessage) };
  }

  /**
   * Lists a new run under its tenant (before the run exists: a listing skips runs not created yet),
   * and among its runs in progress until `endInProgress` (one slot, one round trip). A test run
   * (`listed` false) counts as in progress but stays out of the tenant's listing.
   */
  async listRun(tenantId: string, runId: string, createdAt: number, listed = true): Promise<void> {
    const write = this.redis.multi();
    if (listed) write.zadd(this.keys.tenantRuns(tenantId), createdAt, runId);
    await write.zadd(this.keys.runsInProgress(tenantId), createdAt, runId).exec();
  }

  /** Remembers a succeeded run as its workflow's latest for the tenant (unless a later one is). */
  async noteSucceeded(run: Pick<RunRecord, 'id' | 'tenantId' | 'workflowId' | 'finishedAt'>): Promise<void> {
    await NOTE_SUCCEEDED.run(this.redis, [this.keys.lastSucceeded(run.tenantId)], [run.workflowId, String(run.finishedAt ?? 0), run.id, String(this.config.RUN_RETENTION_SECONDS)]);
  }

  /** The tenant's latest succeeded run of a workflow, while it exists. */
  async lastSucceeded(tenantId: string, workflowId: string): Promise<RunRecord | undefined> {
    const entry = await this.redis.hget(this.keys.lastSucceeded(tenantId), workflowId);
    const runId = entry?.slice(entry.indexOf(':') + 1);
    return runId ? this.record(runId) : undefined;
  }

  async endInProgress(tenantId: string, runIds: readonly string[]): Promise<void> {
    if (runIds.length > 0) await this.redis.zrem(this.keys.runsInProgress(tenantId), ...runIds);
  }

  /** How many runs the tenant has in progress, and the oldest `count` of them (to check for ones that ended without being taken off). */
  async runsInProgress(tenantId: string, count: number): Promise<{ total: number; oldest: Array<{ id: string; createdAt: number }> }> {
    const key = this.keys.runsInProgress(tenantId);
    const [total, flat] = await Promise.all([this.redis.zcard(key), this.redis.zrange(key, 0, count - 1, 'WITHSCORES')]);
    const oldest: Array<{ id: string; createdAt: number }> = [];
    for (let i = 0; i < flat.length; i += 2) oldest.push({ id: flat[i]!, createdAt: Number(flat[i + 1]) });
    return { total, oldest };
  }

  /** Newest-first page of a tenant's run ids created at or before `atOrBefore` (epoch ms). */
  async listRunIds(tenantId: string, atOrBefore: number | undefined, count: number): Promise<Array<{ id: string; createdAt: number }>> {
    const max = atOrBefore === undefined ? '+inf' : String(atOrBefore);
    const flat = await this.redis.zrevrangebyscore(this.keys.tenantRuns(tenantId), max, '-inf', 'WITHSCORES', 'LIMIT', 0, count);
    const page: Array<{ id: string; createdAt: number }> = [];
    for (let i = 0; i < flat.length; i += 2) page.push({ id: flat[i]!, createdAt: Number(flat[i + 1]) });
    return page;
  }

  async forgetRun(tenantId: string, runId: string): Promise<void> {
    await this.redis.zrem(this.keys.tenantRuns(tenantId), runId);
  }

  /** Claims an idempotency key for `runId`; returns the run id that holds it (the earlier one when taken). */
  /** The run an idempotency key names, if it names one that exists. */
  async runOfIdempotencyKey(tenantId: string, key: string): Promise<RunRecord | undefined> {
    const runId = await this.redis.get(this.keys.idempotency(tenantId, key));
    const record = runId ? await this.record(runId) : undefined;
    return record?.tenantId === tenantId ? record : undefined;
  }

  async claimIdempotencyKey(tenantId: string, key: string, runId: string): Promise<string> {
    const k = this.keys.idempotency(tenantId, key);
    const set = await this.redis.set(k, runId, 'EX', this.config.IDEMPOTENCY_TTL_SECONDS, 'NX');
    if (set === 'OK') return runId;
    return (await this.redis.get(k)) ?? runId;
  }
}

/** The node record as stored: logs live in their own hash, written only when a result brings them; an output with a reference is left out. */
export function storedNode(node: NodeRecord): StoredNode {
  const { logs: _logs, ...stored } = node;
  // An output kept by reference is loaded when needed (run-payloads.ts), never stored twice.
  if (stored.outputRef) delete stored.output;
  return stored;
}

function inboxEntry([id, fields]: [string, string[]]): InboxEntry {
  return { id, event: parseJsonField<EngineEvent>(fields, (v) => typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string') };
}

/** The event of a stream entry (`e <json>`), or undefined when it holds none. */
export function parseStoredEvent(fields: string[]): RunEventMessage | undefined {
  return parseJsonField<RunEventMessage>(fields, (v) => typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string');
}

function parseJsonField<T>(fields: string[], accept: (value: unknown) => boolean): T | undefined {
  try {
    const value: unknown = JSON.parse(fields[1] ?? '');
    return accept(value) ? (value as T) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A transition's commands by where they go: events to the run's stream, follow-up events
 * (`resolve_edges`, `start_roots`, `end_run`) to its inbox, the rest to its outbox.
 */
function splitCommands(commands: EngineCommand[]): { events: RunEventMessage[]; outbox: OutboxCommand[]; follow: EngineEvent[] } {
  const events: RunEventMessage[] = [];
  const outbox: OutboxCommand[] = [];
  const follow: EngineEvent[] = [];
  let finished = false;
  for (const command of commands) {
    if (command.type === 'emit') {
      events.push(command.event);
      if (command.event.type === 'run' && isTerminalRunPhase(command.event.status)) finished = true;
    } else if (isFollowUp(command)) follow.push({ ...command });
    else outbox.push(command);
  }
  if (finished) outbox.push({ type: 'run_finished' });
  return { events, outbox, follow };
}

