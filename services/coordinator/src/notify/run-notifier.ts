import { Inject, Injectable, Optional } from '@nestjs/common';
import { isTerminalRunPhase, type RunCompletion } from '@podflow/protocol';
import type { RedisClient } from '@podflow/redis';
import type { ObjectStore } from '@podflow/storage';
import type { RunRecord } from '@podflow/workflow';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { CoordinatorMetrics } from '../metrics/coordinator-metrics';
import { RunStore } from '../orchestration/run-store';
import { CONFIG, LOGGER, OBJECT_STORE, REDIS } from '../tokens';
import { WebhookDeliveries } from '../webhooks/webhook-deliveries';
import { targetIdentity, type NotifyTarget } from './notify-targets';
import { ReplyStreams } from './reply-streams';

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

/**
 * What a run's end sets off (the `run_finished` outbox command): it leaves its tenant's runs in
 * progress, and its outcome goes to its notify targets: reply streams get a `RunCompletion`,
 * webhooks get a delivery job. Called for the `run_finished` outbox entry, which the batch that
 * ended the run wrote: the entry stays until every target was served, so a crash anywhere here
 * means a second go, and each target is served once per run (reply marker, webhook job id).
 */
@Injectable()
export class RunNotifier {
  readonly replies: ReplyStreams;

  constructor(
    private readonly store: RunStore,
    private readonly webhooks: WebhookDeliveries,
    @Inject(REDIS) redis: RedisClient,
    @Inject(OBJECT_STORE) private readonly objects: ObjectStore,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Optional() private readonly metrics?: CoordinatorMetrics,
  ) {
    this.replies = new ReplyStreams(redis, config.QUEUE_PREFIX, config.REPLY_RETENTION_SECONDS);
  }

  /** A run has ended: off its tenant's runs in progress, and its outcome to every target it has. */
  async runFinished(runId: string): Promise<void> {
    const { record, targets } = await this.store.recordWithTargets(runId);
    if (!record) return;
    this.metrics?.runsFinished.inc({ status: record.status });
    // A test run is no production run, and a tool call's run is not one of the workflow its tool
    // shares a name with: their outputs are never what later test runs read upstream.
    const latest = record.status === 'succeeded' && !record.test && record.tool === undefined ? this.store.noteSucceeded(record) : undefined;
    await Promise.all([this.store.endInProgress(record.tenantId, [runId]), latest, targets.length > 0 ? this.notify(record, targets) : undefined]);
  }

  /** Serves `targets` of a run that is finished (a no-op for one still going). */
  async notify(record: RunRecord, targets: readonly NotifyTarget[]): Promise<void> {
    if (!isTerminalRunPhase(record.status)) return;
    const completion = await this.completionOf(record);
    await Promise.all(
      targets.map(async (target) => {
        const addressed: RunCompletion = { ...completion, ...(target.correlationId !== undefined ? { correlationId: target.correlationId } : {}) };
        if (target.kind === 'reply') {
          if (target.submissionId !== undefined) addressed.submissionId = target.submissionId;
          const appended = await this.replies.append(target.replyTo, addressed, `${record.id}\n${targetIdentity(target)}`);
          if (appended) this.logger.debug({ runId: record.id, replyTo: target.replyTo }, 'completion sent to its reply target');
        } else {
          await this.webhooks.enqueue(target.url, addressed);
        }
      }),
    );
  }

  /** The outcome every target gets: outputs inline, or a pre-signed URL when they were too large to keep inline. */
  private async completionOf(run: RunRecord): Promise<RunCompletion> {
    const completion: RunCompletion = {
      runId: run.id,
      tenantId: run.tenantId,
      status: run.status as RunCompletion['status'],
      workflowId: run.workflowId,
      ...(run.workflowVersion ? { workflowVersion: run.workflowVersion } : {}),
      ...(run.error ? { error: run.error } : {}),
      createdAt: iso(run.createdAt),
      finishedAt: iso(run.finishedAt ?? Date.now())!,
    };
    if (run.outputsRef) {
      const signed = await this.objects.sign(run.outputsRef.key, this.config.FILE_URL_TTL_SECONDS);
      completion.outputsUrl = signed.url;
      completion.outputsUrlExpiresAt = signed.expiresAt.toISOString();
    } else {
      completion.outputs = run.outputs ?? null;
    }
    return completion;
  }
}
