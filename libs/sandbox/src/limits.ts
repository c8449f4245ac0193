import { DEFAULT_RUNNER_LIMITS, type NodeError, type RunnerLimits } from '@podflow/protocol';

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

/** FILES_TOO_LARGE for files over `maxFiles` or `maxFilesBytes` (checked again on the host by both drivers). */
export function filesTooLarge(limits: Pick<RunnerLimits, 'maxFiles' | 'maxFilesBytes'>): NodeError {
  return {
    code: 'FILES_TOO_LARGE',
    message:
      `the code left more than ${limits.maxFiles} files or ${limits.maxFilesBytes} bytes under /home/user; ` +
      'write fewer or smaller files, or delete temporary ones before main returns',
    details: { maxFiles: limits.maxFiles, maxFilesBytes: limits.maxFilesBytes },
  };
}
