import type { ExecResult } from './exec';
import type { JsonObject } from './json';

/** BullMQ queue names (DESIGN.md "Queues"). The key prefix is configuration, not part of the name. */
export const QUEUE_NAMES = {
  /** coordinator → workers: one job per node execution. */
  exec: 'exec',
  /** workers → coordinator, durable: execution started/finished, plus the coordinator's own timers. */
  results: 'results',
  /** other services → coordinator: run submissions. */
  submissions: 'submissions',
  /** coordinator → coordinator: webhook deliveries, retried with backoff. */
  webhooks: 'webhooks',
} as const;

/**
 * Default key prefix. It carries no hash tag: podflow places the tags inside its keys itself, so
 * that in a Redis Cluster each run, each tenant and each queue has a slot of its own and the
 * work spreads over the masters (README "Redis Cluster").
 */
export const DEFAULT_KEY_PREFIX = 'podflow';

/**
 * Why `prefix` cannot be a key prefix, or undefined when it can. Braces are refused: a hash tag in
 * the prefix would put every podflow key into one slot (one master does all the work), and would
 * turn the tags podflow places in its keys into plain text.
 */
export function keyPrefixProblem(prefix: string): string | undefined {
  if (prefix.length === 0) return 'QUEUE_PREFIX must not be empty';
  if (/[{}]/.test(prefix)) {
    return `QUEUE_PREFIX "${prefix.slice(0, 64)}" contains "{" or "}": podflow places Redis Cluster hash tags inside its keys itself ({q:<queue>}, {r:<run>}, {t:<tenant>}), so the prefix must have none; use e.g. "${prefix.replace(/[{}]/g, '') || DEFAULT_KEY_PREFIX}"`;
  }
  if (/\s/.test(prefix)) return `QUEUE_PREFIX "${prefix.slice(0, 64)}" contains white space`;
  return undefined;
}

/**
 * The BullMQ `prefix` option of queue `queueName`: the key prefix plus a hash tag of the queue's
 * own, so every key of one queue shares a slot (BullMQ's scripts touch several at once) while
 * different queues land on different slots: `podflow:{q:exec}:exec:wait`. Every BullMQ Queue,
 * Worker and QueueEvents of podflow takes its prefix from here.
 */
export function queuePrefix(prefix: string, queueName: string): string {
  return `${prefix}:{q:${queueName}}`;
}

/** Pub/sub channel on which the coordinator announces executions to kill. Channels have no slot. */
export function cancelChannel(prefix: string): string {
  return `${prefix}:cancel`;
}

/** Set of canceled execution ids, checked by a worker before it starts a job; a slot of its own. */
export function canceledSetKey(prefix: string): string {
  return `${prefix}:{canceled}:executions`;
}

/**
 * Pub/sub channel on which the run store announces new entries of run `runId`'s event stream:
 * each message is the id of the last entry just written (the scripts PUBLISH it right after
 * their XADDs). The coordinators' event hubs subscribe to the runs they have followers for and
 * read the stream itself with XRANGE; the message only says when, never what.
 */
export function runEventsChannel(prefix: string, runId: string): string {
  return `${prefix}:run-events:${runId}`;
}

/** One execution's result as a worker reports it; `startReported: false` when no `started` was sent for it. */
export interface FinishedReport {
  result: ExecResult;
  startReported?: boolean;
}

/**
 * Messages on the `results` queue.
 * - A worker reports `started` only for an execution still running STARTED_REPORT_DELAY_MS after
 *   it began; a quicker one sends its result with `startReported: false`, and the coordinator
 *   records the start and the result together.
 * - Results that are ready while the worker's previous message is still being written go
 *   together as one `finished_batch` (at most MAX_RESULTS_PER_MESSAGE), so a busy worker costs
 *   one queue message per batch, not per node; an idle one sends each result at once as `finished`.
 */
export type ResultMessage =
  | { kind: 'started'; runId: string; nodeId: string; attempt: number; executionId: string; workerId: string; at: number }
  | ({ kind: 'finished' } & FinishedReport)
  | { kind: 'finished_batch'; results: FinishedReport[] }
  | { kind: 'run_timeout'; runId: string; at: number };

/** Results one `finished_batch` carries at most (each result's output is at most OUTPUT_INLINE_MAX_BYTES inline). */
export const MAX_RESULTS_PER_MESSAGE = 16;

/** Job ids on the `results` queue: deterministic, so a message sent twice is stored once while it is queued. */
export function resultJobId(message: ResultMessage): string {
  switch (message.kind) {
    case 'started':
      return `started.${message.executionId}`;
    case 'finished':
      return `finished.${message.result.executionId}`;
    case 'finished_batch':
      // Every id, not the first and a count: a batch re-sent after a failed add may hold other results.
      return `finished.${message.results.map((r) => r.result.executionId).join('+')}`;
    case 'run_timeout':
      return `timeout.${message.runId}`;
  }
}

/** A submission that another service writes onto the `submissions` queue. */
export interface SubmissionMessage {
  tenantId: string;
  /** Inline definition (object) or the id of a registered workflow. */
  workflow?: JsonObject;
  workflowId?: string;
  version?: number;
  inputs?: JsonObject;
  idempotencyKey?: string;
  /** A reply target (completions.ts): the stream that receives this run's `RunCompletion`. */
  replyTo?: string;
  /** Returned as given in the completion, so the submitter can match it to its own request. */
  correlationId?: string;
  /** An HTTPS or HTTP URL that receives the completion as a signed POST (README "Webhooks"). */
  webhookUrl?: string;
}
