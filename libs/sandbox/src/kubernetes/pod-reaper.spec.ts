import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { LAYER_BUILDER_SELECTOR } from './layer-builder-spec';
import { ANNOTATIONS } from './pod-identity';
import { PodReaper } from './pod-reaper';

const NOW = Date.UTC(2026, 10, 20, 12, 0, 0);

function pod(name: string, executionId: string | undefined, ageMs: number, deadlineInMs: number): V1Pod {
  return {
    metadata: {
      name,
      creationTimestamp: new Date(NOW - ageMs),
      annotations: {
        ...(executionId ? { [ANNOTATIONS.executionId]: executionId } : {}),
        [ANNOTATIONS.deadline]: new Date(NOW + deadlineInMs).toISOString(),
      },
    },
  };
}

/** A stand-in for the API holding a list of pods; records deletions. */
function fakeCore(pods: V1Pod[], builders: V1Pod[] = []) {
  const deleted: string[] = [];
  const core = {
    listNamespacedPod: async ({ labelSelector }: { labelSelector: string }) => ({ items: labelSelector === LAYER_BUILDER_SELECTOR ? builders : pods }),
    deleteNamespacedPod: async ({ name }: { name: string }) => {
      deleted.push(name);
      return {};
    },
  } as unknown as CoreV1Api;
  return { core, deleted };
}

describe('PodReaper', () => {
  it('deletes pods of finished executions and pods past their deadline, and keeps the rest', async () => {
    const { core, deleted } = fakeCore([
      pod('active', 'run.a.1', 120_000, 60_000),
      pod('finished', 'run.b.1', 120_000, 60_000),
      pod('overdue', 'run.c.1', 120_000, -1),
      pod('young', 'run.d.1', 5_000, 60_000),
      pod('anonymous', undefined, 120_000, 60_000),
    ]);
    const active = new Set(['run.a.1', 'run.c.1']);
    const reaper = new PodReaper({ core, namespace: 'ns', isActive: async (id) => active.has(id), minAgeMs: 60_000, now: () => NOW });
    expect(await reaper.sweep()).toEqual([
      { pod: 'finished', reason: 'inactive' },
      { pod: 'overdue', reason: 'deadline' },
      { pod: 'anonymous', reason: 'unlabelled' },
    ]);
    expect(deleted).toEqual(['finished', 'overdue', 'anonymous']);
  });

  it('leaves a pod that is already being deleted alone', async () => {
    const terminating = pod('terminating', 'run.e.1', 120_000, -1);
    terminating.metadata!.deletionTimestamp = new Date(NOW);
    const { core, deleted } = fakeCore([terminating]);
    const reaper = new PodReaper({ core, namespace: 'ns', isActive: async () => false, now: () => NOW });
    expect(await reaper.sweep()).toEqual([]);
    expect(deleted).toEqual([]);
  });

  it('deletes finished layer builder pods a dead worker left, and leaves running or young ones to be adopted', async () => {
    const builder = (name: string, phase: string, ageMs: number): V1Pod => ({ metadata: { name, creationTimestamp: new Date(NOW - ageMs) }, status: { phase } });
    const { core, deleted } = fakeCore([], [builder('done', 'Succeeded', 120_000), builder('failed', 'Failed', 120_000), builder('running', 'Running', 120_000), builder('fresh', 'Failed', 1_000)]);
    const reaper = new PodReaper({ core, namespace: 'ns', isActive: async () => true, minAgeMs: 60_000, now: () => NOW });
    expect(await reaper.sweep()).toEqual([
      { pod: 'done', reason: 'finished-builder' },
      { pod: 'failed', reason: 'finished-builder' },
    ]);
    expect(deleted).toEqual(['done', 'failed']);
  });
});
