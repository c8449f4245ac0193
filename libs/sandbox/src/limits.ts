import { DEFAULT_RUNNER_LIMITS, type RunnerLimits } from '@podflow/protocol';

// Quantities are parsed where the Resources type lives; re-exported for the drivers.
export { parseMemoryQuantity } from '@podflow/protocol';

/** Limits both drivers share: the runner's limits. */

/** Runner limits of one execution: protocol defaults, then the driver's, then the request's. */
export function mergeRunnerLimits(driver?: Partial<RunnerLimits>, request?: Partial<RunnerLimits>): RunnerLimits {
  return { ...DEFAULT_RUNNER_LIMITS, ...definedOnly(driver), ...definedOnly(request) };
}

function definedOnly<T extends object>(value: Partial<T> | undefined): Partial<T> {
  if (!value) return {};
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
