import type { NodeError } from './errors';
import type { JsonObject } from './json';

/**
 * The completion channel: a service that submits on `submissions` may name a reply target, a
 * Redis stream of its own, and receives every run's terminal outcome there, at least once.
 * Reply targets exist only on the queue path: whoever writes to `submissions` already holds the
 * Redis credentials, while an HTTP tenant naming a stream could write into another service's.
 */

/** A reply target's name: what `SubmissionMessage.replyTo` holds (letters, digits and `._:-`). */
export const REPLY_TARGET_PATTERN = /^[A-Za-z0-9._:-]{1,100}$/;

/** A correlation id is the submitter's own; bounded so a completion stays small. */
export const MAX_CORRELATION_ID_CHARS = 200;

/** The stream a reply target names. Its own hash tag, so each service's stream has its own slot. */
export function replyStreamKey(prefix: string, replyTo: string): string {
  return `${prefix}:{reply:${replyTo}}:completions`;
}

/** Why a reply target or correlation id is refused, or undefined when it is fine. */
export function replyTargetProblem(replyTo: unknown, correlationId: unknown): string | undefined {
  if (replyTo !== undefined && (typeof replyTo !== 'string' || !REPLY_TARGET_PATTERN.test(replyTo))) {
    return `replyTo ${JSON.stringify(replyTo)?.slice(0, 120)} is not a reply target name: 1 to 100 letters, digits, ".", "_", ":" or "-"`;
  }
  if (correlationId !== undefined && (typeof correlationId !== 'string' || correlationId.length > MAX_CORRELATION_ID_CHARS)) {
    return `correlationId must be a string of at most ${MAX_CORRELATION_ID_CHARS} characters`;
  }
  return undefined;
}

/**
 * A run's terminal outcome, as a reply target and a webhook receive it. `rejected` is a
 * submission that never became a run (invalid definition, unknown workflow, ...): it has no
 * `runId`, and `error` says why.
 */
export interface RunCompletion {
  runId?: string;
  tenantId: string;
  status: 'succeeded' | 'failed' | 'canceled' | 'rejected';
  /** The submitter's own id for this submission, returned as given. */
  correlationId?: string;
  /** The `submissions` job the run came from (queue submissions only). */
  submissionId?: string;
  workflowId?: string;
  workflowVersion?: number;
  /** The run's outputs when they are small enough to travel inline (OUTPUT_INLINE_MAX_BYTES)... */
  outputs?: JsonObject | null;
  /** ...otherwise a pre-signed URL of their JSON, valid until `outputsUrlExpiresAt`. */
  outputsUrl?: string;
  outputsUrlExpiresAt?: string;
  error?: NodeError | { code: string; message: string };
  createdAt?: string;
  finishedAt: string;
}

/** The stream entry field holding a completion's JSON. */
export const COMPLETION_FIELD = 'completion';
