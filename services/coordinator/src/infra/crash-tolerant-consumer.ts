import type { WorkerOptions } from 'bullmq';

/**
 * Options for every queue the coordinator consumes (submissions, results, webhooks). Their
 * messages are idempotent (a submission's key is its job id, a result the engine has applied is
 * dropped as stale, a webhook delivery is at least once), so a job taken by a coordinator that
 * died is simply taken again. BullMQ's default (`maxStalledCount: 1`) fails a job that stalled
 * twice for good, whatever its attempts: with coordinators crashing in a row that drops accepted
 * work, and a lost result leaves its run waiting for RUN_TIMEOUT. The bound still ends a message
 * that kills every coordinator that takes it. The short lock (renewed every half of it while the
 * job runs) brings a dead coordinator's job back within seconds instead of a minute.
 */
export const CRASH_TOLERANT_CONSUMER: Pick<WorkerOptions, 'maxStalledCount' | 'lockDuration' | 'stalledInterval'> = {
  maxStalledCount: 50,
  lockDuration: 10_000,
  stalledInterval: 10_000,
};
