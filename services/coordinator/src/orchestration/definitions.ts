import { Inject, Injectable } from '@nestjs/common';
import { PodflowError } from '@podflow/protocol';
import { CompiledWorkflow, type Workflow } from '@podflow/workflow';
import { createHash } from 'node:crypto';
import { RunStore } from './run-store';

/** Compiled definitions kept per coordinator; each is immutable, so the cache is never stale. */
const MAX_CACHED = 500;

/**
 * Workflow definitions by content hash: stored once in Redis however many runs use them, and
 * compiled once per coordinator (edge index, positions, expression reads). A run references its
 * definition by hash; no definition is copied into run state.
 */
@Injectable()
export class Definitions {
  private readonly cache = new Map<string, CompiledWorkflow>();

  constructor(@Inject(RunStore) private readonly store: RunStore) {}

  /** Stores `workflow` (if new) and returns it compiled under its hash. */
  async put(workflow: Workflow): Promise<CompiledWorkflow> {
    const json = JSON.stringify(workflow);
    const hash = createHash('sha256').update(json).digest('hex');
    const cached = this.cache.get(hash);
    await this.store.putDefinition(hash, json, cached !== undefined);
    return this.remember(cached ?? new CompiledWorkflow(workflow, hash));
  }

  async get(hash: string): Promise<CompiledWorkflow> {
    const cached = this.cache.get(hash);
    if (cached) return this.remember(cached);
    const json = await this.store.getDefinition(hash);
    if (!json) throw new PodflowError('INTERNAL', `workflow definition ${hash} is missing from Redis; runs that reference it cannot advance`);
    return this.remember(new CompiledWorkflow(JSON.parse(json) as Workflow, hash));
  }

  /** Least recently used last out: Map order is insertion order, so re-inserting marks use. */
  private remember(compiled: CompiledWorkflow): CompiledWorkflow {
    this.cache.delete(compiled.hash);
    this.cache.set(compiled.hash, compiled);
    if (this.cache.size > MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    return compiled;
  }
}
