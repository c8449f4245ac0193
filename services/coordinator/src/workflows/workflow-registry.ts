import { Inject, Injectable } from '@nestjs/common';
import { PodflowError } from '@podflow/protocol';
import { DEFAULT_WORKFLOW_LIMITS, parseWorkflow, type Workflow } from '@podflow/workflow';
import type { RedisClient } from '@podflow/redis';
import { RunStore } from '../orchestration/run-store';
import type { CoordinatorConfig } from '../config';
import { dependencyPoliciesFor } from '../tenancy/dependency-policy';
import { assertEgressAllowed } from '../tenancy/egress-policy';
import { CONFIG, REDIS } from '../tokens';

export interface RegisteredWorkflow {
  id: string;
  version: number;
  definition: unknown;
  workflow: Workflow;
  createdAt: string;
}

/** Registered workflow definitions per tenant; each registration is a new immutable version. */
@Injectable()
export class WorkflowRegistry {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    private readonly store: RunStore,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  async register(tenantId: string, definition: unknown): Promise<{ id: string; version: number }> {
    const dependencyPolicies = dependencyPoliciesFor(this.config.DEPENDENCY_POLICY, tenantId);
    const workflow = parseWorkflow(definition as string | object, { ...DEFAULT_WORKFLOW_LIMITS, maxNodes: this.config.MAX_NODES_PER_RUN }, { dependencyPolicies });
    // Refused at registration too, like the dependency lists: a version no run could start is useless.
    assertEgressAllowed(workflow, this.config.EGRESS_TENANTS, tenantId);
    const key = this.store.keys.workflow(tenantId, workflow.id);
    const version = await this.redis.hincrby(key, 'latest', 1);
    const record: RegisteredWorkflow = { id: workflow.id, version, definition, workflow, createdAt: new Date().toISOString() };
    await this.redis.hset(key, `v${version}`, JSON.stringify(record));
    return { id: workflow.id, version };
  }

  /** The given version, or the latest one. */
  async get(tenantId: string, workflowId: string, version?: number): Promise<RegisteredWorkflow> {
    const key = this.store.keys.workflow(tenantId, workflowId);
    const wanted = version ?? Number(await this.redis.hget(key, 'latest'));
    const raw = wanted ? await this.redis.hget(key, `v${wanted}`) : null;
    if (!raw) {
      throw new PodflowError('NOT_FOUND', version ? `workflow "${workflowId}" has no version ${version}` : `no workflow "${workflowId}" is registered; POST it to /v1/workflows first`);
    }
    return JSON.parse(raw) as RegisteredWorkflow;
  }
}
