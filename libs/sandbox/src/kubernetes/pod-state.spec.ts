import type { V1Pod } from '@kubernetes/client-node';
import { isOomKilled, podStage, startFailureReason } from './pod-state';

const withContainer = (state: object, phase = 'Pending'): V1Pod => ({ status: { phase, containerStatuses: [{ name: 'sandbox', image: 'i', imageID: '', ready: false, restartCount: 0, state }] } });

describe('podStage', () => {
  it('is pending while the container is being created', () => {
    expect(podStage(withContainer({ waiting: { reason: 'ContainerCreating' } }))).toEqual({ kind: 'pending', hopeless: false });
  });

  it('names an image that cannot be pulled, and fails fast on a malformed image name', () => {
    expect(podStage(withContainer({ waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "nope:1"' } }))).toEqual({
      kind: 'pending',
      problem: 'ImagePullBackOff: Back-off pulling image "nope:1"',
      hopeless: false,
    });
    expect(podStage(withContainer({ waiting: { reason: 'InvalidImageName' } }))).toMatchObject({ hopeless: true });
  });

  it('reports an unschedulable pod with the scheduler\'s message', () => {
    const pod: V1Pod = { status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes are available: 1 Insufficient memory.' }] } };
    expect(podStage(pod)).toEqual({ kind: 'pending', problem: 'Unschedulable: 0/1 nodes are available: 1 Insufficient memory.', hopeless: false });
  });

  it('reads init containers too (a layer builder\'s prepare and install): an install that failed, a prepare that can never start', () => {
    const status = (name: string, state: object) => ({ name, image: 'i', imageID: '', ready: false, restartCount: 0, state });
    const builder: V1Pod = {
      status: {
        phase: 'Failed',
        initContainerStatuses: [status('prepare', { terminated: { exitCode: 0 } }), status('install', { terminated: { exitCode: 1, reason: 'Error' } })],
        containerStatuses: [status('builder', { waiting: { reason: 'PodInitializing' } })],
      },
    };
    expect(podStage(builder, 'install')).toMatchObject({ kind: 'terminated', state: { exitCode: 1 } });
    const stuck: V1Pod = { status: { phase: 'Pending', initContainerStatuses: [status('prepare', { waiting: { reason: 'InvalidImageName' } })], containerStatuses: [status('builder', { waiting: { reason: 'PodInitializing' } })] } };
    expect(podStage(stuck, 'prepare')).toMatchObject({ kind: 'pending', hopeless: true });
    expect(podStage(stuck, 'builder')).toMatchObject({ kind: 'pending', hopeless: false });
  });

  it('tells running, terminated and failed (evicted) apart', () => {
    expect(podStage(withContainer({ running: {} }, 'Running'))).toEqual({ kind: 'running' });
    const oom = podStage(withContainer({ terminated: { exitCode: 137, reason: 'OOMKilled' } }, 'Failed'));
    expect(oom).toMatchObject({ kind: 'terminated' });
    expect(oom.kind === 'terminated' && isOomKilled(oom.state)).toBe(true);
    expect(podStage({ status: { phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: memory.' } })).toEqual({
      kind: 'failed',
      reason: 'Evicted',
      message: 'The node was low on resource: memory.',
    });
  });
});

describe('startFailureReason', () => {
  it('prefers the pod\'s own status, then its warning events', () => {
    expect(startFailureReason(withContainer({ waiting: { reason: 'ErrImagePull', message: 'not found' } }), [])).toBe('ErrImagePull: not found');
    const events = [
      { type: 'Normal', reason: 'Scheduled', message: 'assigned', lastTimestamp: new Date(1), involvedObject: {}, metadata: {} },
      { type: 'Warning', reason: 'FailedMount', message: 'volume x', lastTimestamp: new Date(2), involvedObject: {}, metadata: {} },
    ];
    expect(startFailureReason(withContainer({ waiting: { reason: 'ContainerCreating' } }), events)).toBe('FailedMount: volume x');
  });

  it('says when the pod never reached a node', () => {
    expect(startFailureReason({ spec: { containers: [] }, status: { phase: 'Pending' } }, [])).toBe('the pod was never scheduled to a node');
  });
});
