import { z } from 'zod';

/**
 * How one tenant's ready executions are dispatched onto `exec` (orchestration/admission.ts):
 * its share under contention (`weight`: a tenant of weight 2 starts twice as many executions as
 * one of weight 1 while both have work waiting) and a hard cap on its executions in `exec`
 * (waiting, delayed or running); past the cap its ready nodes wait in their runs' outboxes.
 */
export interface TenantDispatch {
  weight: number;
  maxInFlight: number;
}

/** Operator defaults and per-tenant overrides (`TENANT_WEIGHTS`, `TENANT_MAX_IN_FLIGHT[_BY_TENANT]`). */
export interface DispatchPolicy {
  /** false: first come first served under the global cap only (FAIR_DISPATCH=false). */
  fair: boolean;
  defaults: TenantDispatch;
  weights: ReadonlyMap<string, number>;
  maxInFlight: ReadonlyMap<string, number>;
}

export function dispatchOf(policy: DispatchPolicy, tenantId: string): TenantDispatch {
  return { weight: policy.weights.get(tenantId) ?? policy.defaults.weight, maxInFlight: policy.maxInFlight.get(tenantId) ?? policy.defaults.maxInFlight };
}

/** Highest BullMQ job priority (2^21 - 1); 1 is served first. */
export const PRIORITY_LIMIT = 2 ** 21 - 1;

/**
 * Priority of the `index`-th execution (0-based) admitted in one batch whose virtual start is
 * `start` (see `Admission`): start-time fair queuing, `weight` executions per level. Levels are
 * stored absolute and shifted into BullMQ's range by `shift`.
 */
export function dispatchPriority(start: number, index: number, weight: number, shift: number): number {
  const level = Math.ceil(start + (index + 1) / weight - 1e-9);
  return Math.min(PRIORITY_LIMIT, Math.max(1, level - shift));
}

/**
 * Order in which tenants with held runs get their turn: the one using least of its share first
 * (in-flight executions per unit of weight), ties by id so every coordinator agrees.
 */
export function releaseOrder(tenants: ReadonlyArray<{ id: string; inFlight: number; weight: number }>): string[] {
  return [...tenants].sort((a, b) => a.inFlight / a.weight - b.inFlight / b.weight || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((t) => t.id);
}

const TENANT = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * `tenant=number,...` (tenant ids as in PODFLOW_API_KEYS), checked at boot: a typo stops the
 * coordinator instead of silently applying the default.
 */
export function tenantNumbersEnv(variable: string, check: { min: number; integer: boolean; what: string }) {
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const byTenant = new Map<string, number>();
      for (const entry of (raw ?? '').split(',').map((e) => e.trim()).filter(Boolean)) {
        const [tenant, value, ...rest] = entry.split('=');
        const number = Number(value);
        if (!tenant || !TENANT.test(tenant) || value === undefined || value.trim() === '' || rest.length > 0) {
          ctx.addIssue({ code: 'custom', message: `${variable} entry "${entry}" is not tenant=${check.what} (tenant: letters, digits, _ or -, as in PODFLOW_API_KEYS)` });
        } else if (!Number.isFinite(number) || number < check.min || (check.integer && !Number.isInteger(number))) {
          ctx.addIssue({ code: 'custom', message: `${variable} entry "${entry}": ${check.what} must be ${check.integer ? 'a whole number' : 'a number'} of at least ${check.min}` });
        } else if (byTenant.has(tenant)) {
          ctx.addIssue({ code: 'custom', message: `${variable} names tenant "${tenant}" twice` });
        } else byTenant.set(tenant, number);
      }
      return byTenant;
    });
}
