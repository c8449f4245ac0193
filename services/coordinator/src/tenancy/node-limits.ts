import { parseCpuQuantity, parseMemoryQuantity } from '@podflow/protocol';
import { DEFAULT_WORKFLOW_LIMITS, InvalidWorkflowError, formatDuration, type ValidationIssue, type Workflow, type WorkflowLimits } from '@podflow/workflow';

/**
 * Per-tenant bounds on what one run may ask for: node and run timeouts, CPU and memory per node.
 * Each comes from the tenant's record (admin API) or the operator's TENANT_MAX_* default; unset
 * means only the deployment-wide limits apply. Checked on every new run (a registered workflow
 * too: a limit lowered since registration applies). A node that declares no resources gets the
 * sandbox driver's default, which the operator keeps at or below every tenant's maximum.
 * A timeout left at the deployment default (node 60 s, run 1 h) was not asked for: a tenant whose
 * maximum is lower gets its maximum instead (`withTenantDefaults`), not a refusal.
 */
export interface NodeLimits {
  maxNodeTimeoutSeconds?: number;
  maxRunTimeoutSeconds?: number;
  /** A memory quantity, e.g. `1Gi`. */
  maxNodeMemory?: string;
  /** A CPU quantity, e.g. `2` or `500m`. */
  maxNodeCpu?: string;
}

/** `workflow` with timeouts left at the deployment default lowered to the tenant's maximum. */
export function withTenantDefaults(workflow: Workflow, limits: NodeLimits, defaults: Pick<WorkflowLimits, 'defaultNodeTimeoutMs' | 'defaultRunTimeoutMs'> = DEFAULT_WORKFLOW_LIMITS): Workflow {
  const lower = (ms: number, fallback: number, maxSeconds: number | undefined) => (maxSeconds !== undefined && ms === fallback && ms > maxSeconds * 1000 ? maxSeconds * 1000 : ms);
  const timeoutMs = lower(workflow.timeoutMs, defaults.defaultRunTimeoutMs, limits.maxRunTimeoutSeconds);
  let changed = timeoutMs !== workflow.timeoutMs;
  const nodes = workflow.nodes.map((node) => {
    const nodeTimeout = lower(node.timeoutMs, defaults.defaultNodeTimeoutMs, limits.maxNodeTimeoutSeconds);
    if (nodeTimeout === node.timeoutMs) return node;
    changed = true;
    return { ...node, timeoutMs: nodeTimeout };
  });
  return changed ? { ...workflow, timeoutMs, nodes } : workflow;
}

/** What in `workflow` asks for more than `limits` allow, one issue per field, naming the limit. */
export function nodeLimitIssues(workflow: Workflow, tenantId: string, limits: NodeLimits): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const over = (what: string, limit: string, setting: string) => `${what} is more than tenant "${tenantId}" may ask for (${setting} ${limit}): lower it, or ask your operator to raise the limit`;
  if (limits.maxRunTimeoutSeconds !== undefined && workflow.timeoutMs > limits.maxRunTimeoutSeconds * 1000) {
    issues.push({ where: 'workflow', path: 'timeout', message: over(`run timeout ${formatDuration(workflow.timeoutMs)}`, formatDuration(limits.maxRunTimeoutSeconds * 1000), 'maxRunTimeoutSeconds') });
  }
  const maxMemory = limits.maxNodeMemory !== undefined ? parseMemoryQuantity(limits.maxNodeMemory) : undefined;
  const maxCpu = limits.maxNodeCpu !== undefined ? parseCpuQuantity(limits.maxNodeCpu) : undefined;
  workflow.nodes.forEach((node, index) => {
    const where = `node "${node.id}"`;
    if (limits.maxNodeTimeoutSeconds !== undefined && node.timeoutMs > limits.maxNodeTimeoutSeconds * 1000) {
      issues.push({ where, path: `nodes[${index}].timeout`, message: over(`timeout ${formatDuration(node.timeoutMs)}`, formatDuration(limits.maxNodeTimeoutSeconds * 1000), 'maxNodeTimeoutSeconds') });
    }
    const memory = node.resources?.memory !== undefined ? parseMemoryQuantity(node.resources.memory) : undefined;
    if (maxMemory !== undefined && memory !== undefined && memory > maxMemory) {
      issues.push({ where, path: `nodes[${index}].resources.memory`, message: over(`memory ${node.resources!.memory}`, limits.maxNodeMemory!, 'maxNodeMemory') });
    }
    const cpu = node.resources?.cpu !== undefined ? parseCpuQuantity(node.resources.cpu) : undefined;
    if (maxCpu !== undefined && cpu !== undefined && cpu > maxCpu) {
      issues.push({ where, path: `nodes[${index}].resources.cpu`, message: over(`cpu ${node.resources!.cpu}`, limits.maxNodeCpu!, 'maxNodeCpu') });
    }
  });
  return issues;
}

/** @throws InvalidWorkflowError naming every field over the tenant's limits. */
export function assertWithinNodeLimits(workflow: Workflow, tenantId: string, limits: NodeLimits): void {
  const issues = nodeLimitIssues(workflow, tenantId, limits);
  if (issues.length > 0) throw new InvalidWorkflowError(issues, workflow.id);
}
