import { Inject, Injectable } from '@nestjs/common';
import { PodflowError, ownValue, type FileElement, type JsonObject, type RunPhase } from '@podflow/protocol';
import type { ObjectStore } from '@podflow/storage';
import { DEFAULT_WORKFLOW_LIMITS, InvalidWorkflowError, dependencyPolicyIssues, parseWorkflow, type DependencyPolicy, type RunState, type Workflow } from '@podflow/workflow';
import { randomUUID } from 'node:crypto';
import { Orchestrator } from '../orchestration/orchestrator.service';
import { RunPayloads } from '../orchestration/run-payloads';
import { RunStore } from '../orchestration/run-store';
import type { CoordinatorConfig } from '../config';
import { dependencyPoliciesFor } from '../tenancy/dependency-policy';
import { assertEgressAllowed } from '../tenancy/egress-policy';
import { CONFIG, OBJECT_STORE } from '../tokens';
import { WorkflowRegistry } from '../workflows/workflow-registry';
import { runSummary } from './run-view';

export interface SubmitRun {
  workflow?: unknown;
  workflowId?: string;
  version?: number;
  inputs: JsonObject;
  idempotencyKey?: string;
}

/** Run use cases shared by the HTTP API, the submissions queue and `/v1/executions`. */
@Injectable()
export class RunsService {
  constructor(
    private readonly orchestrator: Orchestrator,
    private readonly store: RunStore,
    private readonly registry: WorkflowRegistry,
    private readonly payloads: RunPayloads,
    @Inject(OBJECT_STORE) private readonly objects: ObjectStore,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  async submit(tenantId: string, submission: SubmitRun): Promise<{ id: string; status: RunPhase }> {
    const policies = dependencyPoliciesFor(this.config.DEPENDENCY_POLICY, tenantId);
    const resolved = submission.workflow !== undefined
      ? { workflow: parseWorkflow(submission.workflow as string | object, DEFAULT_WORKFLOW_LIMITS, { dependencyPolicies: policies }), version: undefined }
      : await this.registry.get(tenantId, submission.workflowId!, submission.version).then((r) => ({ workflow: withCurrentPolicies(r.workflow, policies), version: r.version }));
    // Inline definitions, and registered ones again: a grant revoked since registration applies.
    assertEgressAllowed(resolved.workflow, this.config.EGRESS_TENANTS, tenantId);
    const { id } = await this.orchestrator.createRun({
      id: randomUUID(),
      tenantId,
      workflow: resolved.workflow,
      workflowVersion: resolved.version,
      inputs: submission.inputs,
      idempotencyKey: submission.idempotencyKey,
    });
    const state = await this.get(tenantId, id);
    return { id, status: state.status };
  }

  /** A tenant's run; another tenant's run is reported as not found, never as forbidden. */
  async get(tenantId: string, runId: string): Promise<RunState> {
    const stored = await this.store.load(runId);
    if (!stored || stored.state.tenantId !== tenantId) throw new PodflowError('NOT_FOUND', `no run "${runId}" for this API key`);
    return stored.state;
  }

  /** A tenant's run with its node and run outputs loaded, also those kept in the object store (for the API's views). */
  async getWithOutputs(tenantId: string, runId: string): Promise<RunState> {
    return this.payloads.hydrateForView(await this.get(tenantId, runId));
  }

  async cancel(tenantId: string, runId: string): Promise<RunState> {
    await this.get(tenantId, runId);
    const state = await this.orchestrator.apply(runId, { type: 'cancel', at: Date.now(), reason: 'canceled through the API' });
    if (!state) throw new PodflowError('NOT_FOUND', `no run "${runId}" for this API key`);
    return state;
  }

  /** Newest first. The cursor is `<createdAt>:<runId>` of the last run of the previous page. */
  async list(tenantId: string, filter: { status?: RunPhase; workflowId?: string; limit: number; cursor?: string }) {
    const runs: ReturnType<typeof runSummary>[] = [];
    let cursor = parseCursor(filter.cursor);
    let nextCursor: string | undefined;
    while (runs.length < filter.limit && nextCursor === undefined) {
      const page = await this.store.listRunIds(tenantId, cursor?.createdAt, 100);
      const fresh = page.filter((r) => !cursor || r.createdAt < cursor.createdAt || (r.createdAt === cursor.createdAt && r.id < cursor.id));
      if (fresh.length === 0) break;
      for (const entry of fresh) {
        cursor = entry;
        const stored = await this.store.load(entry.id);
        if (!stored) {
          await this.store.forgetRun(tenantId, entry.id); // expired after RUN_RETENTION_SECONDS
          continue;
        }
        if (filter.status && stored.state.status !== filter.status) continue;
        if (filter.workflowId && stored.state.workflow.id !== filter.workflowId) continue;
        runs.push(runSummary(stored.state));
        if (runs.length === filter.limit) {
          nextCursor = `${entry.createdAt}:${entry.id}`;
          break;
        }
      }
      if (page.length < 100) break;
    }
    return { runs, ...(nextCursor ? { nextCursor } : {}) };
  }

  /**
   * Fresh URLs for a succeeded node's files, living `ttlSeconds` (at most FILE_URL_TTL_SECONDS,
   * the default too): an operator's lifetime is the most any caller gets.
   */
  async signFiles(tenantId: string, runId: string, nodeId: string, ttlSeconds?: number): Promise<{ elements: FileElement[] }> {
    const maxTtl = this.config.FILE_URL_TTL_SECONDS;
    if (ttlSeconds !== undefined && ttlSeconds > maxTtl) {
      throw new PodflowError('BAD_REQUEST', `ttlSeconds ${ttlSeconds} is longer than this deployment allows: at most ${maxTtl} (FILE_URL_TTL_SECONDS); ask for less, or leave it out for ${maxTtl}`);
    }
    const state = await this.get(tenantId, runId);
    // Own keys only: a node id such as "constructor" must not find Object.prototype's.
    const node = ownValue(state.nodes, nodeId);
    if (!node) throw new PodflowError('NOT_FOUND', `run "${runId}" has no node "${nodeId}"`);
    if (node.status !== 'succeeded') throw new PodflowError('CONFLICT', `node "${nodeId}" is ${node.status}; files can be signed once it has succeeded`);
    const elements: FileElement[] = [];
    for (const element of node.files?.elements ?? []) {
      const signed = await this.objects.sign(element.key, ttlSeconds);
      elements.push({ ...element, download_url: signed.url, expires_at: signed.expiresAt.toISOString() });
    }
    return { elements };
  }
}

/** A registered version passed the dependency lists of its day; the current lists apply to every new run. */
function withCurrentPolicies(workflow: Workflow, policies: DependencyPolicy[]): Workflow {
  const refused = dependencyPolicyIssues(workflow, policies);
  if (refused.length > 0) throw new InvalidWorkflowError(refused, workflow.id);
  return workflow;
}

function parseCursor(cursor: string | undefined): { createdAt: number; id: string } | undefined {
  if (!cursor) return undefined;
  const match = /^(\d+):(.+)$/.exec(cursor);
  if (!match) throw new PodflowError('BAD_REQUEST', `cursor "${cursor}" is not one this API returned; pass nextCursor from the previous page`);
  return { createdAt: Number(match[1]), id: match[2]! };
}
