import { Inject, Injectable } from '@nestjs/common';
import { PodflowError, type FileElement, type JsonObject, type RunPhase } from '@podflow/protocol';
import type { ObjectStore } from '@podflow/storage';
import { CompiledWorkflow, DEFAULT_WORKFLOW_LIMITS, InvalidWorkflowError, dependencyPolicyIssues, keptNodes, nodeStateOf, parseWorkflow, pendingRecord, type DependencyPolicy, type KeptParams, type NodeState, type RunRecord, type Workflow } from '@podflow/workflow';
import { randomUUID } from 'node:crypto';
import { Definitions } from '../orchestration/definitions';
import { Orchestrator } from '../orchestration/orchestrator.service';
import { RunPayloads } from '../orchestration/run-payloads';
import { RunStore } from '../orchestration/run-store';
import type { CoordinatorConfig } from '../config';
import { dependencyPoliciesFor } from '../tenancy/dependency-policy';
import { assertEgressAllowed } from '../tenancy/egress-policy';
import { CONFIG, OBJECT_STORE } from '../tokens';
import { WorkflowRegistry } from '../workflows/workflow-registry';
import { runSummary, type RunSnapshot } from './run-view';
import { RunRateLimiter } from '../tenancy/run-rate';
import { assertWithinNodeLimits, withTenantDefaults, type NodeLimits } from '../tenancy/node-limits';
import { RunsInProgressLimit } from '../tenancy/runs-in-progress';
import { TenantDirectory } from '../tenancy/tenant-directory';
import type { NotifyTarget } from '../notify/notify-targets';
import { RunNotifier } from '../notify/run-notifier';
import { WebhookDeliveries } from '../webhooks/webhook-deliveries';

export interface SubmitRun {
  workflow?: unknown;
  workflowId?: string;
  version?: number;
  inputs: JsonObject;
  idempotencyKey?: string;
  /** A reply stream (queue submissions only: see libs/protocol completions.ts). */
  reply?: { replyTo: string; submissionId?: string };
  /** Checked against the tenant's allowed hosts and, after DNS, against private ranges. */
  webhookUrl?: string;
  correlationId?: string;
}

/**
 * How a resume or a test run turns a definition into the run it starts (RunsService.submit).
 * `definition`: run this one, as stored (normalized), instead of resolving one from the
 * submission. `shape`: from the final definition (tenant defaults applied), the definition to run
 * and the nodes it starts with as succeeded.
 */
export interface RunPlan {
  definition?: { workflow: Workflow; version?: number };
  shape(workflow: Workflow): { workflow: Workflow; keep: KeptParams };
}

/** `POST /v1/runs/:id/resume` (request-schemas `resumeRunBody`). */
export interface ResumeRun {
  workflow?: JsonObject;
  version?: number;
  idempotencyKey?: string;
  webhookUrl?: string;
  correlationId?: string;
}

/** Node ids a snapshot reads together with the run record, before it knows the run is the caller's. */
const SPECULATIVE_NODE_READS = 16;

/** Run use cases shared by the HTTP API, the submissions queue and `/v1/executions`. */
/** Runs one GET /v1/runs page reads at most (each a whole record); a filtered page may hold fewer matches, with a nextCursor. */
export const MAX_RUNS_EXAMINED = 500;

@Injectable()
export class RunsService {
  constructor(
    private readonly orchestrator: Orchestrator,
    private readonly store: RunStore,
    private readonly registry: WorkflowRegistry,
    private readonly payloads: RunPayloads,
    private readonly definitions: Definitions,
    @Inject(OBJECT_STORE) private readonly objects: ObjectStore,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    private readonly rate: RunRateLimiter,
    private readonly webhooks: WebhookDeliveries,
    private readonly notifier: RunNotifier,
    private readonly directory: TenantDirectory,
    private readonly inProgress: RunsInProgressLimit,
  ) {}

  /**
   * Creates a run; returns its id, status and the definition it runs (normalized: defaults filled in).
   * @throws PodflowError TOO_MANY_REQUESTS past the tenant's runs per minute or runs in progress (nothing is created).
   */
  async submit(tenantId: string, submission: SubmitRun, plan?: RunPlan): Promise<{ id: string; status: RunPhase; workflow: Workflow; created: boolean; kept?: string[] }> {
    const notify = notifyTargetsOf(submission);
    // A key that names a run already: the same run, whatever changed since (limits, rate); this
    // submission's targets are added to it (a webhook URL checked first) and served now if it has finished.
    const existing = submission.idempotencyKey !== undefined ? await this.store.runOfIdempotencyKey(tenantId, submission.idempotencyKey) : undefined;
    if (existing) {
      if (submission.webhookUrl !== undefined) await this.webhooks.check(tenantId, submission.webhookUrl);
      const [run, compiled] = await Promise.all([this.addTargets(existing, notify), this.definitionOf(existing)]);
      return { id: run.id, status: run.status, workflow: compiled.workflow, created: false };
    }
    await this.inProgress.check(tenantId);
    await this.rate.take(tenantId);
    if (submission.webhookUrl !== undefined) await this.webhooks.check(tenantId, submission.webhookUrl);
    const policies = dependencyPoliciesFor(this.config.DEPENDENCY_POLICY, tenantId);
    const resolved = plan?.definition
      ? { workflow: withCurrentPolicies(plan.definition.workflow, policies), version: plan.definition.version }
      : submission.workflow !== undefined
      ? { workflow: parseWorkflow(submission.workflow as string | object, { ...DEFAULT_WORKFLOW_LIMITS, maxNodes: this.config.MAX_NODES_PER_RUN }, { dependencyPolicies: policies }), version: undefined }
      : await this.registry.get(tenantId, submission.workflowId!, submission.version).then((r) => ({ workflow: withCurrentPolicies(r.workflow, policies), version: r.version }));
    // Inline definitions, and registered ones again: a grant revoked or a limit lowered since registration applies.
    assertEgressAllowed(resolved.workflow, this.config.EGRESS_TENANTS, tenantId);
    const limits = await this.nodeLimits(tenantId);
    const defaulted = withTenantDefaults(resolved.workflow, limits);
    assertWithinNodeLimits(defaulted, tenantId, limits);
    const shaped = plan?.shape(defaulted);
    const workflow = shaped?.workflow ?? defaulted;
    const { id, created } = await this.orchestrator.createRun({
      id: randomUUID(),
      tenantId,
      workflow,
      workflowVersion: resolved.version,
      inputs: submission.inputs,
      idempotencyKey: submission.idempotencyKey,
      notify,
      ...(shaped ? { keep: shaped.keep } : {}),
    });
    let run = await this.get(tenantId, id);
    // Another submission claimed the key in between: the same as an existing run.
    if (!created) run = await this.addTargets(run, notify);
    return { id, status: run.status, workflow, created, ...(shaped ? { kept: [...shaped.keep.kept.keys()] } : {}) };
  }

  /**
   * A new run that resumes a failed or canceled one: the same inputs; the run's own definition, a
   * registered `version` of its workflow, or an edited `workflow` (same id); every node that keeps
   * its result under @podflow/workflow `keptNodes` is not run again. Checked like any new run
   * (rate, runs in progress, egress, tenant limits).
   * @throws PodflowError CONFLICT for a run that is still going or succeeded; BAD_REQUEST for a definition of another workflow.
   */
  async resume(tenantId: string, runId: string, request: ResumeRun): Promise<{ id: string; status: RunPhase; created: boolean; kept: string[] }> {
    const from = await this.get(tenantId, runId);
    if (from.test) {
      throw new PodflowError('CONFLICT', `run "${runId}" is a test run of node "${from.test.nodeId}"; a test run is not resumed (it would become a production run of a partial definition): test the node again`);
    }
    if (from.tool) {
      throw new PodflowError('CONFLICT', `run "${runId}" is a call of the agent tool ${from.tool}; a tool call is not resumed (it would become a run of a workflow named like the tool): call the tool again`);
    }
    if (from.status !== 'failed' && from.status !== 'canceled') {
      const hint = from.status === 'succeeded' ? 'start a new run instead' : 'wait for it to end, or cancel it first';
      throw new PodflowError('CONFLICT', `run "${runId}" is ${from.status}; only a failed or canceled run can be resumed (${hint})`);
    }
    if (request.workflow !== undefined && request.workflow.id !== from.workflowId) {
      throw new PodflowError('BAD_REQUEST', `the definition to resume with is workflow ${JSON.stringify(request.workflow.id ?? null)}, but run "${runId}" ran workflow "${from.workflowId}"; resume with an edited definition of the same workflow, or start a new run`);
    }
    if (request.version !== undefined && from.workflowVersion === undefined) {
      throw new PodflowError('BAD_REQUEST', `run "${runId}" ran an inline definition, not a registered workflow; pass the edited definition as "workflow" instead of "version"`);
    }
    const compiled = await this.definitionOf(from);
    const [stored, inputs] = await Promise.all([this.store.nodes(runId, compiled.nodeIds), this.store.inputs(runId)]);
    // Only succeeded nodes can be kept: only their outputs (stored apart when large) are loaded, a
    // few at a time; the new run refers to an output stored apart instead of storing it again.
    const succeeded = [...stored].filter(([, record]) => record.status === 'succeeded');
    const records = new Map<string, NodeState>();
    await eachLimited(succeeded, HYDRATE_CONCURRENCY, async ([id, record]) => {
      records.set(id, await this.payloads.hydrateNode(from, id, record));
    });
    const definition: Pick<SubmitRun, 'workflow' | 'workflowId' | 'version'> =
      request.workflow !== undefined ? { workflow: request.workflow } : request.version !== undefined ? { workflowId: from.workflowId, version: request.version } : {};
    const same = request.workflow === undefined && request.version === undefined;
    const { webhookUrl, correlationId, idempotencyKey } = request;
    const run = await this.submit(
      tenantId,
      { ...definition, inputs, idempotencyKey, webhookUrl, correlationId },
      {
        ...(same ? { definition: { workflow: compiled.workflow, version: from.workflowVersion } } : {}),
        shape: (workflow) => ({ workflow, keep: { resumedFrom: from.id, kept: keptNodes(compiled, records, new CompiledWorkflow(workflow), from.id) } }),
      },
    );
    return { id: run.id, status: run.status, created: run.created, kept: run.kept ?? [] };
  }

  /** Adds targets to an existing run and serves them now if it has finished (a target served twice is still one delivery). */
  private async addTargets(run: RunRecord, notify: readonly NotifyTarget[]): Promise<RunRecord> {
    if (notify.length === 0) return run;
    const current = await this.store.addNotifyTargets(run.id, notify);
    await this.notifier.notify(current, notify);
    return current;
  }

  /** The tenant's own limits over the operator's TENANT_MAX_* defaults. */
  private async nodeLimits(tenantId: string): Promise<NodeLimits> {
    const own = await this.directory.tenantSettings(tenantId);
    const c = this.config;
    return {
      maxNodeTimeoutSeconds: own.maxNodeTimeoutSeconds ?? c.TENANT_MAX_NODE_TIMEOUT_SECONDS,
      maxRunTimeoutSeconds: own.maxRunTimeoutSeconds ?? c.TENANT_MAX_RUN_TIMEOUT_SECONDS,
      maxNodeMemory: own.maxNodeMemory ?? c.TENANT_MAX_NODE_MEMORY,
      maxNodeCpu: own.maxNodeCpu ?? c.TENANT_MAX_NODE_CPU,
    };
  }

  /** A tenant's run record; another tenant's run is reported as not found, never as forbidden. */
  async get(tenantId: string, runId: string): Promise<RunRecord> {
    const run = await this.store.record(runId);
    if (!run || run.tenantId !== tenantId) throw new PodflowError('NOT_FOUND', `no run "${runId}" for this API key`);
    return run;
  }

  /** The definition a run executes. */
  async definitionOf(run: RunRecord): Promise<CompiledWorkflow> {
    return this.definitions.get(run.workflowHash);
  }

  /**
   * A tenant's run for the API: outputs loaded (also those kept in the object store), nodes in
   * definition order, `nodeLimit` of them from `nodeCursor`, or exactly the ids in `nodes`.
   */
  async snapshot(tenantId: string, runId: string, page: { nodes?: string[]; nodeLimit?: number; nodeCursor?: string } = {}): Promise<RunSnapshot> {
    // A few nodes named up front (a finished execution's one) are read right behind the run record,
    // in the same round trip: as before, no node is older than the record. Nothing read is used
    // before the run is known to be the tenant's (a caller that names another tenant's run id
    // costs a read of at most this many nodes' records, their logs and the inputs, all bounded).
    const record = this.get(tenantId, runId);
    const early = page.nodes && page.nodes.length <= SPECULATIVE_NODE_READS ? this.nodeParts(runId, [...new Set(page.nodes)]) : undefined;
    early?.catch(() => undefined);
    const run = await record;
    const compiled = await this.definitionOf(run);
    const all = compiled.nodeIds;
    let ids: string[];
    let nextNodeCursor: string | undefined;
    if (page.nodes) {
      const unknown = page.nodes.filter((id) => !compiled.nodesById.has(id));
      if (unknown.length > 0) throw new PodflowError('BAD_REQUEST', `run "${runId}" has no node(s) ${unknown.slice(0, 5).map((id) => JSON.stringify(id)).join(', ')}; nodes= takes ids of its workflow's nodes`);
      ids = [...new Set(page.nodes)];
    } else {
      const from = Number(page.nodeCursor ?? 0);
      const limit = page.nodeLimit ?? 1000;
      ids = all.slice(from, from + limit);
      if (from + limit < all.length) nextNodeCursor = String(from + limit);
    }
    const [[stored, logs, inputs], outputs] = await Promise.all([early ?? this.nodeParts(runId, ids), this.payloads.runOutputs(run)]);
    const nodes: Array<[string, NodeState]> = [];
    for (const id of ids) {
      // No record: nothing has touched the node yet (a run writes its nodes' records as they change).
      const record = stored.get(id) ?? pendingRecord(compiled, id);
      const node = nodeStateOf(await this.payloads.hydrateNode(run, id, record));
      const nodeLogs = logs.get(id);
      nodes.push([id, nodeLogs ? { ...node, logs: nodeLogs } : node]);
    }
    return { run, inputs, ...(outputs !== undefined ? { outputs } : {}), nodes, nodesTotal: all.length, ...(nextNodeCursor !== undefined ? { nextNodeCursor } : {}) };
  }

  private nodeParts(runId: string, ids: string[]) {
    return Promise.all([this.store.nodes(runId, ids), this.store.logs(runId, ids), this.store.inputs(runId)]);
  }

  /** Cancels a run; returns its record once the cancel is applied (or after a few seconds, still pending). */
  async cancel(tenantId: string, runId: string): Promise<RunRecord> {
    await this.get(tenantId, runId);
    const run = await this.orchestrator.submitAndWait(runId, { type: 'cancel', at: Date.now(), reason: 'canceled through the API' });
    if (!run) throw new PodflowError('NOT_FOUND', `no run "${runId}" for this API key`);
    return run;
  }

  /**
   * Newest first. The cursor is `<createdAt>:<runId>` of the last run the previous page looked at.
   * A page looks at most MAX_RUNS_EXAMINED runs: a filter that matches few of a tenant's runs
   * gives a shorter page with a nextCursor (continue while there is one), instead of reading
   * every run kept in one request (a red-team finding: up to gigabytes of records per request).
   */
  async list(tenantId: string, filter: { status?: RunPhase; workflowId?: string; limit: number; cursor?: string }) {
    const runs: ReturnType<typeof runSummary>[] = [];
    let cursor = parseCursor(filter.cursor);
    let nextCursor: string | undefined;
    let examined = 0;
    while (runs.length < filter.limit && nextCursor === undefined) {
      const page = await this.store.listRunIds(tenantId, cursor?.createdAt, 100);
      const fresh = page.filter((r) => !cursor || r.createdAt < cursor.createdAt || (r.createdAt === cursor.createdAt && r.id < cursor.id));
      if (fresh.length === 0) break;
      for (const entry of fresh) {
        cursor = entry;
        const run = await this.store.record(entry.id);
        if (!run) {
          // Expired after RUN_RETENTION_SECONDS; one listed a moment ago may still be being created.
          if (entry.createdAt < Date.now() - 60_000) await this.store.forgetRun(tenantId, entry.id);
          continue;
        }
        const matches = (!filter.status || run.status === filter.status) && (!filter.workflowId || run.workflowId === filter.workflowId);
        if (matches) runs.push(runSummary(run));
        if (runs.length === filter.limit || ++examined >= MAX_RUNS_EXAMINED) {
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
    const run = await this.get(tenantId, runId);
    const compiled = await this.definitionOf(run);
    if (!compiled.nodesById.has(nodeId)) throw new PodflowError('NOT_FOUND', `run "${runId}" has no node "${nodeId}"`);
    const node = (await this.store.nodes(runId, [nodeId])).get(nodeId) ?? pendingRecord(compiled, nodeId);
    if (node.status !== 'succeeded') throw new PodflowError('CONFLICT', `node "${nodeId}" is ${node.status}; files can be signed once it has succeeded`);
    const elements: FileElement[] = [];
    for (const element of node.files?.elements ?? []) {
      const signed = await this.objects.sign(element.key, ttlSeconds);
      elements.push({ ...element, download_url: signed.url, expires_at: signed.expiresAt.toISOString() });
    }
    return { elements };
  }
}

/** Outputs a resume loads at once. */
const HYDRATE_CONCURRENCY = 16;

/** Runs `work` on every item, at most `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

function notifyTargetsOf(submission: SubmitRun): NotifyTarget[] {
  const correlation = submission.correlationId !== undefined ? { correlationId: submission.correlationId } : {};
  const targets: NotifyTarget[] = [];
  if (submission.reply) targets.push({ kind: 'reply', replyTo: submission.reply.replyTo, ...correlation, ...(submission.reply.submissionId ? { submissionId: submission.reply.submissionId } : {}) });
  if (submission.webhookUrl !== undefined) targets.push({ kind: 'webhook', url: submission.webhookUrl, ...correlation });
  return targets;
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
