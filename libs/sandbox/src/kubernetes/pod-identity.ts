import { createHash } from 'node:crypto';

/** Label keys every sandbox pod carries (DESIGN.md: labels under `podflow.dev/`). */
export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  role: 'podflow.dev/role',
  tenant: 'podflow.dev/tenant',
  run: 'podflow.dev/run',
  node: 'podflow.dev/node',
  execution: 'podflow.dev/execution',
  attempt: 'podflow.dev/attempt',
  worker: 'podflow.dev/worker',
  /** `granted` only on pods of executions whose tenant may reach the internet (a NetworkPolicy selects it). */
  egress: 'podflow.dev/egress',
  /** `python` or `node`: the runner a warm pod waits with. */
  runtime: 'podflow.dev/runtime',
  /** A hash of the spec a warm pod was built with (warmTemplate): only pods of the claimer's own are claimed. */
  template: 'podflow.dev/template',
} as const;

/** Value of `LABELS.egress` that k8s/manifests/sandbox/25-egress-granted-network-policy.yaml selects. */
export const EGRESS_GRANTED = 'granted';

/** Full, unshortened identifiers live in annotations (label values are capped at 63 characters). */
export const ANNOTATIONS = {
  executionId: 'podflow.dev/execution-id',
  tenantId: 'podflow.dev/tenant-id',
  deadline: 'podflow.dev/deadline',
  /** The runner's response nonce, so a worker that adopts the pod can read its answer. */
  nonce: 'podflow.dev/nonce',
} as const;

export const MANAGED_BY = 'podflow';
export const SANDBOX_ROLE = 'sandbox';
/** Selects every sandbox pod this software manages (the reaper's view). */
export const SANDBOX_SELECTOR = `${LABELS.managedBy}=${MANAGED_BY},${LABELS.role}=${SANDBOX_ROLE}`;
/**
 * The role of a warm pod: started, tenant-neutral, waiting to be claimed (warm-pods.ts). A claim
 * turns it into a `sandbox` pod of one execution; it never turns back.
 */
export const WARM_ROLE = 'warm';
/** Selects the waiting warm pods of one runtime. */
export function warmSelector(runtime: 'python' | 'node'): string {
  return `${LABELS.managedBy}=${MANAGED_BY},${LABELS.role}=${WARM_ROLE},${LABELS.runtime}=${runtime}`;
}

const hash = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * A label value for an arbitrary identifier: itself when it is a valid label value, else a
 * readable prefix plus a hash, so it stays unique, valid and at most 63 characters.
 */
export function labelValue(text: string): string {
  if (/^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/.test(text)) return text;
  const readable = text.replace(/[^-A-Za-z0-9_.]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 40).replace(/[^A-Za-z0-9]+$/, '');
  return `${readable ? `${readable}-` : ''}${hash(text).slice(0, 16)}`;
}

/** The execution's label: a hash, so lookups by execution id never depend on its characters. */
export function executionLabel(executionId: string): string {
  return hash(executionId).slice(0, 40);
}

/**
 * One deterministic pod name per execution. Creating it twice fails with 409 AlreadyExists: two
 * workers (a re-delivered job) can never start the same execution in two pods; the second adopts.
 */
export function podNameFor(executionId: string): string {
  return `podflow-${hash(executionId).slice(0, 24)}`;
}
