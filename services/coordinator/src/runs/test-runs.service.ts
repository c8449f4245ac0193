import { Inject, Injectable } from '@nestjs/common';
import { PodflowError, type JsonObject, type RunPhase } from '@podflow/protocol';
import { DEFAULT_WORKFLOW_LIMITS, parseWorkflow, testRunDefinition, type KeptNode, type RunRecord, type Workflow } from '@podflow/workflow';
import type { CoordinatorConfig } from '../config';
import { RunPayloads } from '../orchestration/run-payloads';
import { RunStore } from '../orchestration/run-store';
import { dependencyPoliciesFor } from '../tenancy/dependency-policy';
import { CONFIG } from '../tokens';
import { WorkflowRegistry } from '../workflows/workflow-registry';
import { RunsService } from './runs.service';

/** `POST /v1/workflows/:id/nodes/:nodeId/test` (request-schemas `testNodeBody`). */
export interface TestNodeRequest {
  /** The unsaved definition (same id); else the registered workflow, `version` or the latest. */
  workflow?: JsonObject;
  version?: number;
  /** The node's code to try instead of the definition's. */
  code?: string;
  /** Run inputs (`args.inputs`); default: the upstream run's. */
  inputs?: JsonObject;
  /** Sample outputs of upstream nodes, by node id: used instead of a run's. */
  nodes?: JsonObject;
  /** The run to take upstream values from; default: the tenant's latest succeeded run of the workflow. */
  fromRun?: string;
}

/**
 * Test runs of one node: the node alone, in a real sandbox, with the tenant's limits, its upstream
 * nodes kept with the outputs and files of an earlier succeeded run (or sample values), so a
 * builder iterates on one node without running the workflow. A test run is a run like any other
 * (rate, runs in progress, GET /v1/runs/:id, events), recorded apart: it is not in the tenant's run
 * listing and is never the run later test runs read from.
 */
@Injectable()
export class TestRunsService {
  constructor(
    private readonly runs: RunsService,
    private readonly store: RunStore,
    private readonly payloads: RunPayloads,
    private readonly registry: WorkflowRegistry,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  async testNode(tenantId: string, workflowId: string, nodeId: string, request: TestNodeRequest): Promise<{ id: string; status: RunPhase; nodeId: string; upstreamFrom?: string; samples: string[] }> {
    const { workflow, version } = await this.definition(tenantId, workflowId, request);
    const { upstream } = testRunDefinition(workflow, nodeId, request.code, DEFAULT_WORKFLOW_LIMITS);
    const samples = samplesOf(request.nodes, nodeId, upstream);
    const needsRun = upstream.some((id) => !samples.has(id));
    // A named run is checked even when samples cover everything: a wrong id is an error, not ignored.
    const named = request.fromRun !== undefined ? await this.namedRun(tenantId, workflowId, request.fromRun) : undefined;
    const source = named ?? (needsRun || request.inputs === undefined ? await this.store.lastSucceeded(tenantId, workflowId) : undefined);
    const kept = new Map<string, KeptNode>();
    for (const [id, output] of samples) kept.set(id, { keptFrom: 'sample', attempts: 0, output, timings: {} });
    const fromRun = upstream.filter((id) => !samples.has(id));
    if (fromRun.length > 0) {
      const stored = source ? await this.store.nodes(source.id, fromRun) : new Map();
      const missing = fromRun.filter((id) => stored.get(id)?.status !== 'succeeded');
      if (missing.length > 0) throw missingUpstream(workflowId, nodeId, missing, source, stored, request.fromRun !== undefined);
      for (const id of fromRun) {
        const { attempts, executionId, output, files, warnings, timings } = await this.payloads.hydrateNode(source!, id, stored.get(id)!);
        kept.set(id, { keptFrom: source!.id, attempts, ...(executionId ? { executionId } : {}), output: output ?? {}, ...(files ? { files } : {}), ...(warnings ? { warnings } : {}), timings });
      }
    }
    const inputs = request.inputs ?? (source ? await this.store.inputs(source.id) : {});
    const upstreamFrom = fromRun.length > 0 ? source!.id : undefined;
    const run = await this.runs.submit(tenantId, { inputs }, {
      definition: { workflow, version },
      shape: (defaulted) => ({
        workflow: testRunDefinition(defaulted, nodeId, request.code).workflow,
        keep: { kept, test: { nodeId, ...(upstreamFrom ? { upstreamFrom } : {}) } },
      }),
    });
    return { id: run.id, status: run.status, nodeId, ...(upstreamFrom ? { upstreamFrom } : {}), samples: [...samples.keys()] };
  }

  /** The definition under test, normalized: the unsaved one sent with the request, or a registered version. */
  private async definition(tenantId: string, workflowId: string, request: TestNodeRequest): Promise<{ workflow: Workflow; version?: number }> {
    if (request.workflow === undefined) {
      const registered = await this.registry.get(tenantId, workflowId, request.version);
      return { workflow: registered.workflow, version: registered.version };
    }
    const policies = dependencyPoliciesFor(this.config.DEPENDENCY_POLICY, tenantId);
    const workflow = parseWorkflow(request.workflow, { ...DEFAULT_WORKFLOW_LIMITS, maxNodes: this.config.MAX_NODES_PER_RUN }, { dependencyPolicies: policies });
    if (workflow.id !== workflowId) {
      throw new PodflowError('BAD_REQUEST', `the definition sent is workflow "${workflow.id}", but the path names workflow "${workflowId}"; post it to /v1/workflows/${encodeURIComponent(workflow.id)}/nodes/<nodeId>/test`);
    }
    return { workflow };
  }

  /** `fromRun`: the tenant's production run of this workflow (404 for another tenant's, 400 for a test run or another workflow's). */
  private async namedRun(tenantId: string, workflowId: string, fromRun: string): Promise<RunRecord> {
    const run = await this.runs.get(tenantId, fromRun);
    if (run.workflowId !== workflowId) throw new PodflowError('BAD_REQUEST', `fromRun "${fromRun}" is a run of workflow "${run.workflowId}", not "${workflowId}"; name a run of this workflow`);
    if (run.tool !== undefined) throw new PodflowError('BAD_REQUEST', `fromRun "${fromRun}" is an agent tool call (${run.tool}), not a run of your workflow "${workflowId}"; name a run of the workflow, or leave fromRun out for its latest succeeded one`);
    if (run.test) throw new PodflowError('BAD_REQUEST', `fromRun "${fromRun}" is a test run of node "${run.test.nodeId}"; upstream values come from production runs: name one, or leave fromRun out for the latest succeeded one`);
    return run;
  }
}

/** Sample upstream outputs by node id (a Map: node ids are user keys), each checked to be an upstream node with an object `output`. */
function samplesOf(nodes: JsonObject | undefined, nodeId: string, upstream: readonly string[]): Map<string, JsonObject> {
  const samples = new Map<string, JsonObject>();
  const allowed = new Set(upstream);
  for (const [id, value] of Object.entries(nodes ?? {})) {
    if (!allowed.has(id)) {
      const list = upstream.length > 0 ? upstream.map((u) => `"${u}"`).join(', ') : 'none: it is a root, so it reads only inputs';
      throw new PodflowError('BAD_REQUEST', `nodes.${id}: node ${JSON.stringify(id)} is not upstream of "${nodeId}" (its upstream nodes: ${list}); give sample outputs for those only`);
    }
    const output = (value as { output?: unknown } | null)?.output;
    if (typeof value !== 'object' || value === null || Array.isArray(value) || typeof output !== 'object' || output === null || Array.isArray(output)) {
      throw new PodflowError('BAD_REQUEST', `nodes.${id}: give the sample as { "output": { ... } } (an object, as main returns)`);
    }
    samples.set(id, output as JsonObject);
  }
  return samples;
}

function missingUpstream(workflowId: string, nodeId: string, missing: string[], source: RunRecord | undefined, stored: Map<string, { status: string }>, named: boolean): PodflowError {
  const list = missing.map((id) => `"${id}"`).join(', ');
  const why = !source
    ? `no run of workflow "${workflowId}" has succeeded yet`
    : `${named ? 'run' : 'its latest succeeded run,'} ${source.id}${named ? ',' : ''} has no output for ${missing.map((id) => `"${id}" (${stored.get(id)?.status ?? 'never ran in it'})`).join(', ')}`;
  return new PodflowError('CONFLICT', `node "${nodeId}" reads the output of ${list}, and ${why}; run ${missing.length === 1 ? list : 'those nodes'} first (run the workflow), or pass sample values as nodes.${missing[0]}.output`, {
    upstream: missing,
  });
}
