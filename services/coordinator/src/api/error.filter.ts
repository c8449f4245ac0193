import { Catch, HttpException, Inject, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { PodflowError, type ErrorCode } from '@podflow/protocol';
import type { Response } from 'express';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config';
import { CONFIG, LOGGER } from '../tokens';

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
    case 'EGRESS_NOT_GRANTED':
    case 'FORBIDDEN':
      return 403;
    case 'NOT_FOUND':
      return 404;
    case 'PAYLOAD_TOO_LARGE':
      return 413;
    case 'TOO_MANY_REQUESTS':
      return 429;
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
    case 'UNAVAILABLE':
      return 503;
    case 'INTERNAL':
      return 500;
  }
}

function codeOfHttpStatus(status: number): ErrorCode {
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 403) return 'FORBIDDEN';
  if (status === 404) return 'NOT_FOUND';
  if (status === 409) return 'CONFLICT';
  if (status === 413) return 'PAYLOAD_TOO_LARGE';
  if (status >= 400 && status < 500) return 'BAD_REQUEST';
  return 'INTERNAL';
}

/**
 * An error of the body parsers (body-parser, raw-body: http-errors objects). `expose` marks a
 * client error; `type` says what went wrong with the body when they know (a corrupt gzip body
 * comes as a zlib error with only a status).
 */
interface BodyParserError extends Error {
  status: number;
  type?: string;
}

function isBodyParserError(value: unknown): value is BodyParserError {
  if (!(value instanceof Error)) return false;
  const { status, expose } = value as { status?: unknown; expose?: unknown };
  return typeof status === 'number' && status >= 400 && status < 500 && expose === true;
}

/**
 * A request body the parsers refused is the client's fault: 413 when too large, 400 otherwise
 * (also a Content-Encoding they cannot decode), never a 500.
 */
export function bodyParserProblem(error: BodyParserError, maxRequestBytes: number): { status: number; code: ErrorCode; message: string } {
  switch (error.type) {
    case 'entity.too.large':
      return { status: 413, code: 'PAYLOAD_TOO_LARGE', message: `request body too large: the limit is ${maxRequestBytes} bytes (MAX_REQUEST_BYTES); send less, or pass large data as files` };
    case 'encoding.unsupported':
      return { status: 400, code: 'BAD_REQUEST', message: `${error.message}: send the body unencoded, or with Content-Encoding gzip, deflate or br` };
    case 'entity.parse.failed':
      return { status: 400, code: 'BAD_REQUEST', message: `request body is not valid JSON: ${error.message}` };
    default:
      if (error.status === 413) return bodyParserProblem({ ...error, type: 'entity.too.large' }, maxRequestBytes);
      return { status: 400, code: 'BAD_REQUEST', message: `request body refused (${error.type ?? 'it cannot be read as sent; check Content-Encoding and Content-Type'}): ${error.message}` };
  }
}

/** Renders every error as `{ error: { code, message, details? } }` with a fitting status. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

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
      const retryAfter = exception.details?.retryAfterSeconds;
      if (typeof retryAfter === 'number') response.setHeader('Retry-After', String(retryAfter));
    } else if (isBodyParserError(exception)) {
      const problem = bodyParserProblem(exception, this.config.MAX_REQUEST_BYTES);
      status = problem.status;
      body = { code: problem.code, message: problem.message };
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
