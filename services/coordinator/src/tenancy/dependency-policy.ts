import { parseDependencyPolicyEntry, type DependencyPolicy } from '@podflow/workflow';
import { z } from 'zod';

const entries = z.array(
  z.string().superRefine((entry, ctx) => {
    const parsed = parseDependencyPolicyEntry(entry);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.message });
  }),
);

const lists = z.object({ allow: entries.optional(), deny: entries.optional() }).strict();

const policyShape = lists
  .extend({
    tenants: z
      .record(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { message: 'a tenant is letters, digits, _ or - (as in PODFLOW_API_KEYS)' }), lists)
      .optional(),
  })
  .strict();

/** `DEPENDENCY_POLICY`: operator lists and per-tenant lists of `<ecosystem>:<name glob>` entries. */
export type DependencyPolicyConfig = z.infer<typeof policyShape>;

const EXAMPLE = '{"deny":["*:left-pad"],"tenants":{"acme":{"allow":["pypi:tabulate","npm:@types/*"]}}}';

/**
 * The `DEPENDENCY_POLICY` variable: JSON text (absent or empty: no lists) checked at boot, so a
 * typo in an entry stops the coordinator instead of silently allowing everything.
 */
export const dependencyPolicyEnv = z
  .string()
  .optional()
  .transform((raw, ctx): DependencyPolicyConfig | undefined => {
    if (raw === undefined || raw.trim() === '') return undefined;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `DEPENDENCY_POLICY is not JSON (${(error as Error).message}); e.g. ${EXAMPLE}` });
      return z.NEVER;
    }
    const parsed = policyShape.safeParse(json);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) {
      const message = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}: allowed are allow, deny and tenants (operator level), allow and deny (per tenant)` : issue.message;
      ctx.addIssue({ code: 'custom', path: issue.path, message });
    }
    return z.NEVER;
  });

/**
 * The policies a tenant's definitions must pass: the operator's lists, then the tenant's own. All
 * apply (libs/workflow checkDependencyPolicy), so a tenant list can only narrow the operator's.
 */
export function dependencyPoliciesFor(config: DependencyPolicyConfig | undefined, tenantId: string): DependencyPolicy[] {
  if (!config) return [];
  const policies: DependencyPolicy[] = [];
  if (config.allow || config.deny) policies.push({ label: 'operator', allow: config.allow, deny: config.deny });
  const tenant = config.tenants && Object.hasOwn(config.tenants, tenantId) ? config.tenants[tenantId] : undefined;
  if (tenant) policies.push({ label: `tenant "${tenantId}"`, allow: tenant.allow, deny: tenant.deny });
  return policies;
}
