import type { ErrorCode, NodeError } from '@podflow/protocol';

/** A failure of the user's code or output, reported as a node error rather than a runner crash. */
export class UserFailure extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly type?: string,
    readonly userStack?: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'UserFailure';
  }

  toNodeError(): NodeError {
    return {
      code: this.code,
      message: this.message,
      ...(this.type !== undefined ? { type: this.type } : {}),
      ...(this.userStack ? { stack: this.userStack } : {}),
      ...(this.details ? { details: this.details } : {}),
    };
  }
}
