import { Inject, Injectable, Optional, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { RedisClient } from '@podflow/redis';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { CRASH_TOLERANT_CONSUMER } from '../infra/crash-tolerant-consumer';
import { CoordinatorMetrics } from '../metrics/coordinator-metrics';
import { RunKeys } from '../orchestration/run-keys';
import { TenantDirectory } from '../tenancy/tenant-directory';
import { CONFIG, LOGGER, REDIS } from '../tokens';
import { WebhookTargetError, hostAllowed, parseWebhookUrl, resolveWebhookTarget, webhookHost } from './webhook-address';
import { postWebhook, type AttemptOutcome } from './webhook-http';
import { PodflowError, QUEUE_NAMES, SIGNATURE_HEADER, queuePrefix, signatureHeader, type RunCompletion } from '@podflow/protocol';
import { WebhookSecrets } from './webhook-secrets';

/** Attempts a run's delivery log keeps (newest last). */
const LOG_MAX = 100;
/** Redirects one attempt follows, each checked like the first URL. */
const MAX_REDIRECTS = 3;
/** Longest webhook URL accepted. */
export const MAX_WEBHOOK_URL_CHARS = 2048;

interface WebhookJob {
  url: string;
  completion: RunCompletion;
}

/** One line of a run's delivery log (`GET /v1/runs/:id/webhook-deliveries`). */
export interface DeliveryAttempt {
  deliveryId: string;
  url: string;
  attempt: number;
  at: string;
  ok: boolean;
  status: number | null;
  error: string | null;
  durationMs: number;
  /** What happens next: delivered, retried after backoff, or given up. */
  outcome: 'delivered' | 'retrying' | 'failed';
}

/**
 * Webhooks: a run submitted with `webhookUrl` has its completion POSTed there, signed with the
 * tenant's secret (`podflow-signature: t=<unix>,v1=<hmac-sha256 hex of "<t>.<body>">`, as Stripe
 * does). Deliveries are BullMQ jobs on `webhooks` (job id per run and URL: queued once), retried
 * with exponential backoff up to WEBHOOK_MAX_ATTEMPTS; every attempt is logged in the run's slot.
 * The URL is checked when the run is submitted and again, after DNS and on every redirect, at
 * each attempt: a name that later resolves to a private address is refused then too.
 */
@Injectable()
export class WebhookDeliveries implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly queue: Queue<WebhookJob>;
  private worker?: Worker<WebhookJob>;
  private readonly keys: RunKeys;

  constructor(
    private readonly secrets: WebhookSecrets,
    private readonly directory: TenantDirectory,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Optional() private readonly metrics?: CoordinatorMetrics,
  ) {
    this.queue = new Queue(QUEUE_NAMES.webhooks, { connection: redis, prefix: queuePrefix(config.QUEUE_PREFIX, QUEUE_NAMES.webhooks) });
    this.keys = new RunKeys(config.QUEUE_PREFIX);
  }

  onApplicationBootstrap(): void {
    this.worker = new Worker<WebhookJob>(QUEUE_NAMES.webhooks, (job) => this.attempt(job), {
      connection: this.redis,
      prefix: queuePrefix(this.config.QUEUE_PREFIX, QUEUE_NAMES.webhooks),
      concurrency: 32,
      ...CRASH_TOLERANT_CONSUMER,
    });
    this.worker.on('error', (error) => this.logger.error({ err: error }, 'webhooks worker error'));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.worker?.close();
    await this.queue.close();
  }

  /**
   * Refuses a URL a run may not name, with a 400 that says why: not http(s), a host outside the
   * tenant's allowed hosts, or a name that resolves to a loopback, link-local or private address;
   * 503 UNAVAILABLE when its name cannot be resolved just now.
   */
  async check(tenantId: string, url: unknown): Promise<void> {
    if (typeof url !== 'string') throw new PodflowError('BAD_REQUEST', 'webhookUrl must be a string: an absolute http:// or https:// URL');
    if (url.length > MAX_WEBHOOK_URL_CHARS) throw new PodflowError('BAD_REQUEST', `webhookUrl is ${url.length} characters; at most ${MAX_WEBHOOK_URL_CHARS}`);
    try {
      const parsed = parseWebhookUrl(url);
      const hosts = await this.allowedHosts(tenantId);
      if (!hostAllowed(webhookHost(parsed), hosts)) {
        throw new WebhookTargetError(`webhook host "${webhookHost(parsed)}" is not one tenant "${tenantId}" may call (allowed: ${hosts.join(', ')}); ask your operator to allow it (the tenant's webhookHosts, or WEBHOOK_ALLOWED_HOSTS)`);
      }
      await resolveWebhookTarget(url, { allowedCidrs: this.config.WEBHOOK_ALLOWED_CIDRS }, undefined, { owner: tenantId });
    } catch (error) {
      if (error instanceof WebhookTargetError) throw new PodflowError(error.temporary ? 'UNAVAILABLE' : 'BAD_REQUEST', error.message);
      throw error;
    }
  }

  /** Queues the delivery of `completion` to `url`; once per run and URL (and correlation id). */
  async enqueue(url: string, completion: RunCompletion): Promise<void> {
    const jobId = deliveryId(completion, url);
    await this.queue.add('deliver', { url, completion }, {
      jobId,
      attempts: this.config.WEBHOOK_MAX_ATTEMPTS,
      backoff: { type: 'exponential', delay: this.config.WEBHOOK_BACKOFF_MS },
      removeOnComplete: { age: 24 * 3600 },
      removeOnFail: { age: 7 * 24 * 3600 },
    });
  }

  /** A run's delivery attempts, oldest first. */
  async log(runId: string): Promise<DeliveryAttempt[]> {
    const lines = await this.redis.lrange(this.logKey(runId), 0, -1);
    return lines.map((line) => JSON.parse(line) as DeliveryAttempt);
  }

  private async attempt(job: Job<WebhookJob>): Promise<void> {
    const { url, completion } = job.data;
    const body = JSON.stringify(completion);
    const now = Date.now();
    const secrets = await this.secrets.signing(completion.tenantId, now);
    const hosts = await this.allowedHosts(completion.tenantId);
    const attempt = job.attemptsMade + 1;
    const outcome = await postWebhook(url, body, {
      [SIGNATURE_HEADER]: signatureHeader(secrets, body, Math.floor(now / 1000)),
      'podflow-delivery': job.id!,
      'podflow-attempt': String(attempt),
    }, {
      policy: { allowedCidrs: this.config.WEBHOOK_ALLOWED_CIDRS },
      timeoutMs: this.config.WEBHOOK_TIMEOUT_MS,
      maxRedirects: MAX_REDIRECTS,
      hostAllowed: (host) => hostAllowed(host, hosts),
      owner: completion.tenantId,
    });
    const last = attempt >= this.config.WEBHOOK_MAX_ATTEMPTS;
    const next: DeliveryAttempt['outcome'] = outcome.ok ? 'delivered' : outcome.permanent || last ? 'failed' : 'retrying';
    await this.record(completion, job.id!, attempt, now, outcome, next);
    this.metrics?.webhookAttempts.inc({ outcome: next });
    if (outcome.ok) return;
    this.logger.info({ runId: completion.runId, url: outcome.url, attempt, status: outcome.status, error: outcome.error, next }, 'webhook delivery failed');
    const reason = outcome.error ?? `the receiver answered ${outcome.status}`;
    if (outcome.permanent) throw new UnrecoverableError(reason);
    throw new Error(reason);
  }

  private async record(completion: RunCompletion, id: string, attempt: number, at: number, outcome: AttemptOutcome, next: DeliveryAttempt['outcome']): Promise<void> {
    if (!completion.runId) return;
    const line: DeliveryAttempt = {
      deliveryId: id,
      url: outcome.url,
      attempt,
      at: new Date(at).toISOString(),
      ok: outcome.ok,
      status: outcome.status ?? null,
      error: outcome.error ?? null,
      durationMs: outcome.durationMs,
      outcome: next,
    };
    const key = this.logKey(completion.runId);
    await this.redis.multi().rpush(key, JSON.stringify(line)).ltrim(key, -LOG_MAX, -1).expire(key, this.config.RUN_RETENTION_SECONDS).exec();
  }

  private logKey(runId: string): string {
    return this.keys.webhookLog(runId);
  }

  private async allowedHosts(tenantId: string): Promise<readonly string[]> {
    return (await this.directory.tenantSettings(tenantId)).webhookHosts ?? this.config.WEBHOOK_ALLOWED_HOSTS;
  }
}

/** The job id of one delivery: per run, URL and correlation id, so a replayed `run_finished` queues it once. */
function deliveryId(completion: RunCompletion, url: string): string {
  const digest = createHash('sha256').update(`${url}\n${completion.correlationId ?? ''}`).digest('base64url').slice(0, 16);
  return `wh.${completion.runId ?? completion.submissionId}.${digest}`;
}
