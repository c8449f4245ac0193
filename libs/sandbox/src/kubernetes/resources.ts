import type { Resources } from '@podflow/protocol';
import { parseMemoryQuantity } from '../limits';

/** CPU and memory of sandbox pods: what a node gets when it asks for nothing, and the most it may ask for. */
export interface PodResourcePolicy {
  defaultCpuMillis: number;
  defaultMemoryBytes: number;
  maxCpuMillis: number;
  maxMemoryBytes: number;
  /** Requests are this fraction of the limits (bin-packing vs. guaranteed capacity); 1 = Guaranteed QoS. */
  requestRatio: number;
}

export const DEFAULT_POD_RESOURCE_POLICY: PodResourcePolicy = {
  defaultCpuMillis: 1000,
  defaultMemoryBytes: 512 * 1024 * 1024,
  maxCpuMillis: 4000,
  maxMemoryBytes: 4 * 1024 * 1024 * 1024,
  requestRatio: 0.25,
};

/** Parses a Kubernetes CPU quantity (`500m`, `1`, `0.25`) into millicores; undefined when invalid. */
export function parseCpuQuantity(quantity: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(m?)$/.exec(quantity.trim());
  if (!match) return undefined;
  const millis = match[2] === 'm' ? Number(match[1]) : Number(match[1]) * 1000;
  return Number.isFinite(millis) && millis >= 1 ? Math.ceil(millis) : undefined;
}

export interface PodResources {
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
export function resolvePodResources(requested: Resources | undefined, policy: PodResourcePolicy): PodResources {
  const notes: string[] = [];
  let cpuMillis = (requested?.cpu !== undefined ? parseCpuQuantity(requested.cpu) : undefined) ?? policy.defaultCpuMillis;
  let memoryBytes = (requested?.memory !== undefined ? parseMemoryQuantity(requested.memory) : undefined) ?? policy.defaultMemoryBytes;
  if (cpuMillis > policy.maxCpuMillis) {
    notes.push(`resources.cpu ${requested?.cpu} is above the cluster maximum ${policy.maxCpuMillis}m; using ${policy.maxCpuMillis}m`);
    cpuMillis = policy.maxCpuMillis;
  }
  if (memoryBytes > policy.maxMemoryBytes) {
    notes.push(`resources.memory ${requested?.memory} is above the cluster maximum ${policy.maxMemoryBytes / 1024 / 1024}Mi; using the maximum`);
    memoryBytes = policy.maxMemoryBytes;
  }
  return { cpuMillis, memoryBytes, notes };
}
