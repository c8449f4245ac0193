/**
 * The one error taxonomy of podflow (DESIGN.md "Errors"): node results, the API, the CLI and
 * events all speak these codes.
 */
export const ERROR_CODES = [
  'INVALID_WORKFLOW',
  'INVALID_DEPENDENCY',
  'DEPENDENCY_INSTALL_FAILED',
  'SANDBOX_START_TIMEOUT',
  'SANDBOX_LOST',
  'EXECUTION_TIMEOUT',
  'MEMORY_LIMIT_EXCEEDED',
  'CODE_EXECUTION_FAILED',
  'OUTPUT_INVALID',
  'OUTPUT_TOO_LARGE',
  'FILES_TOO_LARGE',
  'INPUT_BINDING_FAILED',
  'CANCELED',
  'RUN_TIMEOUT',
  // API-level codes (never a node result).
  'UNAUTHENTICATED',
  /** A valid key that may not use this route (a tenant key on the admin API, a disabled tenant). */
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'BAD_REQUEST',
  /** The request body is larger than the coordinator accepts (MAX_REQUEST_BYTES). */
  'PAYLOAD_TOO_LARGE',
  /** A node asks for network egress (`network: true`) that the operator has not granted its tenant. */
  'EGRESS_NOT_GRANTED',
  /** A concurrency cap (streams, waits) is reached; retry after the `Retry-After` seconds. */
  'TOO_MANY_REQUESTS',
  /** A store the coordinator needs (Redis) did not answer in time; retry shortly. */
  'UNAVAILABLE',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** How a node failure with this code is retried: always, only when the node asks, or never. */
export type RetryPolicy = 'always' | 'if-node-asks' | 'never';

/** Exhaustive on purpose: adding a code without deciding its retry policy does not compile. */
export function retryPolicyOf(code: ErrorCode): RetryPolicy {
  switch (code) {
    case 'SANDBOX_START_TIMEOUT':
    case 'SANDBOX_LOST':
      return 'always';
    case 'EXECUTION_TIMEOUT':
    case 'MEMORY_LIMIT_EXCEEDED':
    case 'CODE_EXECUTION_FAILED':
      return 'if-node-asks';
    case 'INVALID_WORKFLOW':
    case 'INVALID_DEPENDENCY':
    case 'DEPENDENCY_INSTALL_FAILED':
    case 'OUTPUT_INVALID':
    case 'OUTPUT_TOO_LARGE':
    case 'FILES_TOO_LARGE':
    case 'INPUT_BINDING_FAILED':
    case 'CANCELED':
    case 'RUN_TIMEOUT':
    case 'UNAUTHENTICATED':
    case 'FORBIDDEN':
    case 'NOT_FOUND':
    case 'CONFLICT':
    case 'BAD_REQUEST':
    case 'PAYLOAD_TOO_LARGE':
    case 'EGRESS_NOT_GRANTED':
    case 'TOO_MANY_REQUESTS':
    case 'UNAVAILABLE':
    case 'INTERNAL':
      return 'never';
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/** A failure as it travels in node results, run state, events and API responses. */
export interface NodeError {
  code: ErrorCode;
  message: string;
  /** Node the failure belongs to (set on run-level errors and on `args.error`). */
  nodeId?: string;
  /** Exception class name for CODE_EXECUTION_FAILED (`ValueError`, `TypeError`, ...). */
  type?: string;
  /** The user's own stack frames only (runner frames removed). */
  stack?: string;
  details?: Record<string, unknown>;
}

/** Base of every domain error. The HTTP layer maps `code` to a status in one place. */
export class PodflowError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'PodflowError';
    this.code = code;
    this.retryable = retryPolicyOf(code) === 'always';
    this.details = details;
  }

  toNodeError(nodeId?: string): NodeError {
    return { code: this.code, message: this.message, ...(nodeId ? { nodeId } : {}), ...(this.details ? { details: this.details } : {}) };
  }
}
