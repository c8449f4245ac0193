import type { CoreV1Event, V1ContainerStateTerminated, V1Pod } from '@kubernetes/client-node';
import { CONTAINER_NAME } from './pod-spec';

/** Waiting reasons that no amount of waiting fixes: fail at once instead of at the start timeout. */
const HOPELESS_WAITING = new Set(['InvalidImageName', 'ErrImageNeverPull', 'CreateContainerConfigError']);

export type PodStage =
  | { kind: 'pending'; problem?: string; hopeless: boolean }
  | { kind: 'running' }
  | { kind: 'terminated'; state: V1ContainerStateTerminated }
  /** The pod failed without the container ever terminating on its own (evicted, deadline, node lost). */
  | { kind: 'failed'; reason: string; message: string };

function containerStatus(pod: V1Pod, name: string) {
  return [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].find((status) => status.name === name);
}

/** Where a sandbox (or layer builder) pod is, from its status alone. */
export function podStage(pod: V1Pod, containerName = CONTAINER_NAME): PodStage {
  const container = containerStatus(pod, containerName);
  if (container?.state?.terminated) return { kind: 'terminated', state: container.state.terminated };
  if (pod.status?.phase === 'Failed') {
    return { kind: 'failed', reason: pod.status.reason ?? 'Failed', message: pod.status.message ?? 'the pod failed' };
  }
  if (container?.state?.running) return { kind: 'running' };
  const waiting = container?.state?.waiting;
  if (waiting?.reason && waiting.reason !== 'ContainerCreating') {
    return { kind: 'pending', problem: `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`, hopeless: HOPELESS_WAITING.has(waiting.reason) };
  }
  const unschedulable = pod.status?.conditions?.find((condition) => condition.type === 'PodScheduled' && condition.status === 'False');
  if (unschedulable) {
    return { kind: 'pending', problem: `${unschedulable.reason ?? 'Unschedulable'}: ${unschedulable.message ?? 'no node fits the pod'}`, hopeless: false };
  }
  return { kind: 'pending', hopeless: false };
}

/** Why a pod did not start, for SANDBOX_START_TIMEOUT: its own status first, else its latest warning events. */
export function startFailureReason(pod: V1Pod | undefined, events: CoreV1Event[]): string {
  const stage = pod ? podStage(pod) : undefined;
  if (stage?.kind === 'pending' && stage.problem) return stage.problem;
  const warnings = events
    .filter((event) => event.type === 'Warning')
    .sort((a, b) => String(a.lastTimestamp ?? a.eventTime ?? '').localeCompare(String(b.lastTimestamp ?? b.eventTime ?? '')))
    .map((event) => `${event.reason}: ${event.message}`);
  if (warnings.length) return [...new Set(warnings)].slice(-3).join('; ');
  if (!pod?.spec?.nodeName) return 'the pod was never scheduled to a node';
  return `the container did not start (pod phase ${pod.status?.phase ?? 'unknown'})`;
}

/** The kernel killed the container for exceeding its memory limit. */
export function isOomKilled(state: V1ContainerStateTerminated): boolean {
  return state.reason === 'OOMKilled';
}
