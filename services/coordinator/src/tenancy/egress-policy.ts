import { PodflowError } from '@podflow/protocol';
import type { Workflow } from '@podflow/workflow';
import { z } from 'zod';

/** Which tenants' nodes may have network egress: all of them, or the listed ones (none by default). */
export type EgressGrant = { all: true } | { all: false; tenants: ReadonlySet<string> };

const TENANT = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The `EGRESS_TENANTS` variable: `*` (every tenant), or comma-separated tenant ids as in
 * PODFLOW_API_KEYS; absent or empty grants egress to no one. Checked at boot, so a typo stops the
 * coordinator instead of silently granting nothing (or everything).
 */
export const egressTenantsEnv = z
  .string()
  .optional()
  .transform((raw, ctx): EgressGrant => {
    const entries = (raw ?? '').split(',').map((entry) => entry.trim()).filter(Boolean);
    if (entries.includes('*')) {
      if (entries.length > 1) ctx.addIssue({ code: 'custom', message: 'EGRESS_TENANTS is either * (every tenant) or a list of tenant ids, not both' });
      return { all: true };
    }
    for (const entry of entries) {
      if (!TENANT.test(entry)) ctx.addIssue({ code: 'custom', message: `EGRESS_TENANTS entry "${entry}" is not a tenant id (letters, digits, _ or -, as in PODFLOW_API_KEYS)` });
    }
    return { all: false, tenants: new Set(entries) };
  });

export function egressGranted(grant: EgressGrant, tenantId: string): boolean {
  return grant.all || grant.tenants.has(tenantId);
}

/**
 * Refuses a workflow whose nodes ask for network egress (`network: true`) when the operator has
 * not granted egress to the tenant. Checked when a definition is registered or submitted, and
 * again when a run of a registered version starts, so revoking a grant applies to new runs.
 * @throws PodflowError EGRESS_NOT_GRANTED (403) naming the nodes and the variable.
 */
export function assertEgressAllowed(workflow: Workflow, grant: EgressGrant, tenantId: string): void {
  if (egressGranted(grant, tenantId)) return;
  const asking = workflow.nodes.filter((node) => node.network).map((node) => node.id);
  if (asking.length === 0) return;
  const nodes = asking.map((id) => `"${id}"`).join(', ');
  throw new PodflowError(
    'EGRESS_NOT_GRANTED',
    `${asking.length === 1 ? 'node' : 'nodes'} ${nodes} of workflow "${workflow.id}" ${asking.length === 1 ? 'asks' : 'ask'} for network egress (network: true), but tenant "${tenantId}" is not granted egress: remove network: true, or ask the operator to add the tenant to EGRESS_TENANTS`,
    { nodes: asking, tenant: tenantId, policy: 'EGRESS_TENANTS' },
  );
}
