import { Inject, Injectable } from '@nestjs/common';
import { PodflowError } from '@podflow/protocol';
import { DEFAULT_EXPRESSION_LIMITS, createRunState, transition, type EngineEvent, type RunState, type TransitionOptions, type Workflow } from '@podflow/workflow';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { CONFIG, LOGGER } from '../tokens';
import { KeyedMutex } from './keyed-mutex';
import { OutboxExecutor } from './outbox-executor';
import { RunPayloads } from './run-payloads';
import { RunStore } from './run-store';

/** Compare-and-set retries before a transition gives up (only under extreme contention). */
const MAX_CAS_ATTEMPTS = 50;

export interface NewRun {
  id: string;
  tenantId: string;
  workflow: Workflow;
  workflowVersion?: number;
  inputs: RunState['inputs'];
  idempotencyKey?: string;
}

/**
 * Loads run state, applies one event through the pure engine, stores the result atomically and
 * carries out the commands. Safe to call twice with the same event and from several coordinators
 * at once: the engine ignores duplicates and the store only accepts a state computed from the
 * version it replaces. Large payloads stay out of Redis around the engine (`RunPayloads`):
 * referenced outputs are loaded before `transition`, large values stored and referenced before
 * the write; a payload stored for a write that then loses the compare-and-set is harmless (keys
 * are content-addressed, so the retry writes the same key or another one nothing points at).
 */
@Injectable()
export class Orchestrator {
  private readonly mutex = new KeyedMutex();
  private readonly options: TransitionOptions;

  constructor(
    private readonly store: RunStore,
    private readonly executor: OutboxExecutor,
    private readonly payloads: RunPayloads,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(CONFIG) config: CoordinatorConfig,
  ) {
    this.options = {
      expressionLimits: { maxBytes: config.EXPRESSION_MAX_BYTES, timeoutMs: config.EXPRESSION_TIMEOUT_MS, maxDepth: DEFAULT_EXPRESSION_LIMITS.maxDepth },
    };
  }

  /** Creates and starts a run. Returns the run's id, or the existing run's for a known idempotency key. */
  async createRun(params: NewRun, now = Date.now()): Promise<{ id: string; created: boolean }> {
    const initial = createRunState({ id: params.id, tenantId: params.tenantId, workflow: params.workflow, workflowVersion: params.workflowVersion, inputs: params.inputs, now });
    const started = await transition(initial, { type: 'start', at: now }, this.options);
    const { state, commands } = await this.payloads.dehydrate(started.state, started.commands);
    const id = await this.store.create(state, commands, params.idempotencyKey);
    if (id === params.id) await this.flushOutbox(id);
    return { id, created: id === params.id };
  }

  /** Applies `event` to the run; a run that no longer exists is reported and ignored. */
  async apply(runId: string, event: EngineEvent): Promise<RunState | undefined> {
    return this.mutex.run(runId, async () => {
      let state: RunState | undefined;
      for (let attempt = 1; ; attempt++) {
        const stored = await this.store.load(runId);
        if (!stored) {
          this.logger.warn({ runId, event: event.type }, 'event for an unknown or expired run ignored');
          return undefined;
        }
        const prepared = await this.payloads.prepareEvent(stored.state, event);
        const next = await transition(await this.payloads.hydrate(stored.state, prepared), prepared, this.options);
        if (next.commands.length === 0) {
          state = stored.state;
          break;
        }
        const dehydrated = await this.payloads.dehydrate(next.state, next.commands);
        if (await this.store.save(stored.version, dehydrated.state, dehydrated.commands, Date.now())) {
          state = dehydrated.state;
          break;
        }
        if (attempt >= MAX_CAS_ATTEMPTS) {
          throw new PodflowError('INTERNAL', `run ${runId}: state kept changing under ${MAX_CAS_ATTEMPTS} attempts to apply ${event.type}; the event will be redelivered`);
        }
      }
      await this.flushOutboxUnlocked(runId);
      return state;
    });
  }

  /** Carries out whatever commands the run's outbox still holds (after a crash, say). */
  flushOutbox(runId: string): Promise<void> {
    return this.mutex.run(runId, () => this.flushOutboxUnlocked(runId));
  }

  private async flushOutboxUnlocked(runId: string): Promise<void> {
    const commands = await this.store.outbox(runId);
    if (commands.length === 0) return;
    const now = Date.now();
    for (const command of commands) await this.executor.execute(runId, command, now);
    await this.store.ackOutbox(runId, commands.length);
  }
}
