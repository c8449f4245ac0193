import { Catch, HttpException, Inject, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { PodflowError, type ErrorCode } from '@podflow/protocol';
import type { Response } from 'express';
import type { Logger } from 'pino';
import { LOGGER } from '../tokens';

/** The one place where error codes become HTTP statuses. Exhaustive: a new code must be placed. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case 'INVALID_WORKFLOW':
    case 'INVALID_DEPENDENCY':
    case 'INPUT_BINDING_FAILED':
    case 'BAD_REQUEST':
      return 400;
    case 'UNAUTHENTICATED':
      return 401;
    case 'NOT_FOUND':
      return 404;
    case 'CONFLICT':
    case 'CANCELED':
      return 409;
    case 'EXECUTION_TIMEOUT':
    case 'RUN_TIMEOUT':
      return 504;
    case 'OUTPUT_INVALID':
    case 'OUTPUT_TOO_LARGE':
    case 'FILES_TOO_LARGE':
    case 'CODE_EXECUTION_FAILED':
    case 'MEMORY_LIMIT_EXCEEDED':
    case 'DEPENDENCY_INSTALL_FAILED':
      return 422;
    case 'SANDBOX_START_TIMEOUT':
    case 'SANDBOX_LOST':
      return 503;
    case 'INTERNAL':
      return 500;
  }
}

function codeOfHttpStatus(status: number): ErrorCode {
  if (status === 401 || status === 403) return 'UNAUTHENTICATED';
  if (status === 404) return 'NOT_FOUND';
  if (status === 409) return 'CONFLICT';
  if (status >= 400 && status < 500) return 'BAD_REQUEST';
  return 'INTERNAL';
}

/** Renders every error as `{ error: { code, message, details? } }` with a fitting status. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    if (response.headersSent) {
      response.end();
      return;
    }
    let status: number;
    let body: { code: ErrorCode; message: string; details?: Record<string, unknown> };
    if (exception instanceof PodflowError) {
      status = httpStatusOf(exception.code);
      body = { code: exception.code, message: exception.message, ...(exception.details ? { details: exception.details } : {}) };
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      const message = status === 413 ? 'request body too large: raise MAX_REQUEST_BYTES or send less' : exception.message;
      body = { code: codeOfHttpStatus(status), message };
    } else {
      status = 500;
      body = { code: 'INTERNAL', message: 'internal error; see the coordinator logs' };
    }
    if (status >= 500) this.logger.error({ err: exception }, 'request failed');
    response.status(status).json({ error: body });
  }
}
