import { Inject, Injectable } from '@nestjs/common';
import { isTerminalRunPhase, type RunEventMessage } from '@podflow/protocol';
import type { EngineCommand, RunState } from '@podflow/workflow';
import type { Redis } from 'ioredis';
import type { CoordinatorConfig } from '../config';
import { CONFIG, REDIS } from '../tokens';
import { RunKeys } from './run-keys';
import { ACK_OUTBOX, CREATE_RUN, SAVE_RUN } from './run-scripts';

/** Entries of a run's event stream read per XRANGE. */
const EVENT_PAGE = 200;

/** Commands that wait in the outbox; `emit` never does: events are written by the same script. */
export type OutboxCommand = Exclude<EngineCommand, { type: 'emit' }>;

export interface StoredRun {
  state: RunState;
  version: number;
}

export interface StoredEvent {
  /** Redis stream id, usable as SSE `Last-Event-ID`. */
  id: string;
  event: RunEventMessage;
}

/** Run state in Redis: one hash per run, an event stream, and an outbox list of commands. */
@Injectable()
export class RunStore {
  readonly keys: RunKeys;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {
    this.keys = new RunKeys(config.QUEUE_PREFIX);
  }

  /** Creates a run with its first transition applied; returns the run id that holds the key. */
  async create(state: RunState, commands: EngineCommand[], idempotencyKey?: string): Promise<string> {
    const { events, outbox } = splitCommands(commands);
    const k = this.keys;
    const result = await this.redis.eval(
      CREATE_RUN,
      6,
      k.run(state.id),
      k.events(state.id),
      k.outbox(state.id),
      k.pendingOutboxes(),
      k.tenantRuns(state.tenantId),
      k.idempotency(state.tenantId, idempotencyKey ?? '-'),
      state.id,
      JSON.stringify(state),
      state.createdAt,
      idempotencyKey ? '1' : '0',
      this.config.IDEMPOTENCY_TTL_SECONDS,
      this.config.RUN_RETENTION_SECONDS,
      events.length,
      ...events.map((e) => JSON.stringify(e)),
      ...outbox.map((c) => JSON.stringify(c)),
    );
    return String(result);
  }

  async load(runId: string): Promise<StoredRun | undefined> {
    const [state, version] = await this.redis.hmget(this.keys.run(runId), 'state', 'v');
    if (!state || !version) return undefined;
    return { state: JSON.parse(state) as RunState, version: Number(version) };
  }

  /** Writes `state` if the run is still at `expectedVersion`. False means: reload and retry. */
  async save(expectedVersion: number, state: RunState, commands: EngineCommand[], now: number): Promise<boolean> {
    const { events, outbox } = splitCommands(commands);
    const k = this.keys;
    const written = await this.redis.eval(
      SAVE_RUN,
      4,
      k.run(state.id),
      k.events(state.id),
      k.outbox(state.id),
      k.pendingOutboxes(),
      state.id,
      expectedVersion,
      JSON.stringify(state),
      now,
      isTerminalRunPhase(state.status) ? '1' : '0',
      this.config.RUN_RETENTION_SECONDS,
      events.length,
      ...events.map((e) => JSON.stringify(e)),
      ...outbox.map((c) => JSON.stringify(c)),
    );
    return written === 1;
  }

  async outbox(runId: string): Promise<OutboxCommand[]> {
    const raw = await this.redis.lrange(this.keys.outbox(runId), 0, -1);
    return raw.map((c) => JSON.parse(c) as OutboxCommand);
  }

  async ackOutbox(runId: string, count: number): Promise<void> {
    await this.redis.eval(ACK_OUTBOX, 2, this.keys.outbox(runId), this.keys.pendingOutboxes(), runId, count);
  }

  /** Runs whose outbox was written before `before` and is still not empty (a coordinator died). */
  async staleOutboxes(before: number, limit = 100): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.pendingOutboxes(), '-inf', before, 'LIMIT', 0, limit);
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
}

/** The event of a stream entry (`e <json>`), or undefined when it holds none. */
export function parseStoredEvent(fields: string[]): RunEventMessage | undefined {
  try {
    const event: unknown = JSON.parse(fields[1] ?? '');
    return typeof event === 'object' && event !== null && typeof (event as { type?: unknown }).type === 'string' ? (event as RunEventMessage) : undefined;
  } catch {
    return undefined;
  }
}

function splitCommands(commands: EngineCommand[]): { events: RunEventMessage[]; outbox: OutboxCommand[] } {
  const events: RunEventMessage[] = [];
  const outbox: OutboxCommand[] = [];
  for (const command of commands) {
    if (command.type === 'emit') events.push(command.event);
    else outbox.push(command);
  }
  return { events, outbox };
}
