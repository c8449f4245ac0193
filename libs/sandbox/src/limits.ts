import { DEFAULT_RUNNER_LIMITS, type RunnerLimits } from '@podflow/protocol';

/** Limits both drivers share: the runner's limits and Kubernetes-style quantities. */

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** Runner limits of one execution: protocol defaults, then the driver's, then the request's. */
export function mergeRunnerLimits(driver?: Partial<RunnerLimits>, request?: Partial<RunnerLimits>): RunnerLimits {
  return { ...DEFAULT_RUNNER_LIMITS, ...definedOnly(driver), ...definedOnly(request) };
}

const QUANTITY = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/;
const QUANTITY_FACTORS: Record<string, number> = {
  '': 1,
  Ki: 1024,
  Mi: MIB,
  Gi: GIB,
  Ti: 1024 * GIB,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
};

/**
 * Bytes of a Kubernetes memory quantity (`256Mi`, `1G`, `134217728`), or `undefined` when it is
 * not one. Requests carry Kubernetes quantities so one node definition fits both drivers.
 */
export function parseMemoryQuantity(quantity: string): number | undefined {
  const match = QUANTITY.exec(quantity.trim());
  if (!match) return undefined;
  const bytes = Math.floor(Number(match[1]) * QUANTITY_FACTORS[match[2] ?? '']);
  return Number.isFinite(bytes) && bytes > 0 ? bytes : undefined;
}

function definedOnly<T extends object>(value: Partial<T> | undefined): Partial<T> {
  if (!value) return {};
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
