import type { ResourcePolicy } from '../resources';

/** CPU and memory of sandbox pods: what a node gets when it asks for nothing, and the most it may ask for. */
export interface PodResourcePolicy extends ResourcePolicy {
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

export { parseCpuQuantity, resolveResources as resolvePodResources } from '../resources';
export type { ExecutionResources as PodResources } from '../resources';
