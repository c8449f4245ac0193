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
} as const;

/** Default key prefix. The braces are a Redis Cluster hash tag: every podflow key shares a slot. */
export const DEFAULT_KEY_PREFIX = '{podflow}';

/** Pub/sub channel on which the coordinator announces executions to kill. */
export function cancelChannel(prefix: string): string {
  return `${prefix}:cancel`;
}

/** Set of canceled execution ids, checked by a worker before it starts a job. */
export function canceledSetKey(prefix: string): string {
  return `${prefix}:canceled-executions`;
}

/** Messages on the `results` queue. */
export type ResultMessage =
  | { kind: 'started'; runId: string; nodeId: string; attempt: number; executionId: string; workerId: string; at: number }
  | { kind: 'finished'; result: ExecResult }
  | { kind: 'run_timeout'; runId: string; at: number };

/** Job ids on the `results` queue: idempotent, so a message sent twice is stored once. */
export function resultJobId(message: ResultMessage): string {
  switch (message.kind) {
    case 'started':
      return `started.${message.executionId}`;
    case 'finished':
      return `finished.${message.result.executionId}`;
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
}
