import { parseCpuQuantity, parseMemoryQuantity, type Resources } from '@podflow/protocol';

/**
 * CPU and memory of one execution on either driver: what a node gets when it asks for nothing,
 * and the most it may ask for. Asking for more is clamped to the maximum and said in `notes`.
 */
export interface ResourcePolicy {
  defaultCpuMillis: number;
  defaultMemoryBytes: number;
  maxCpuMillis: number;
  maxMemoryBytes: number;
}

export { parseCpuQuantity } from '@podflow/protocol';

export interface ExecutionResources {
  cpuMillis: number;
  memoryBytes: number;
  /** What was changed and why, for the execution's warnings (asked above the maximum). */
  notes: string[];
}

/**
 * The node's `resources` within the policy. Above a maximum is clamped to it (and said in `notes`)
 * rather than refused: the workflow stays runnable on a smaller cluster. Unparseable quantities
 * were rejected by workflow validation already; here they fall back to the defaults.
 */
export function resolveResources(requested: Resources | undefined, policy: ResourcePolicy): ExecutionResources {
  const notes: string[] = [];
  let cpuMillis = (requested?.cpu !== undefined ? parseCpuQuantity(requested.cpu) : undefined) ?? policy.defaultCpuMillis;
  let memoryBytes = (requested?.memory !== undefined ? parseMemoryQuantity(requested.memory) : undefined) ?? policy.defaultMemoryBytes;
  if (cpuMillis > policy.maxCpuMillis) {
    notes.push(`resources.cpu ${requested?.cpu} is above the operator maximum ${policy.maxCpuMillis}m; using ${policy.maxCpuMillis}m`);
    cpuMillis = policy.maxCpuMillis;
  }
  if (memoryBytes > policy.maxMemoryBytes) {
    notes.push(`resources.memory ${requested?.memory} is above the operator maximum ${policy.maxMemoryBytes / 1024 / 1024}Mi; using the maximum`);
    memoryBytes = policy.maxMemoryBytes;
  }
  return { cpuMillis, memoryBytes, notes };
}
