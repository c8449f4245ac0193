import { PodflowError } from '@podflow/protocol';
import { text } from 'express';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CoordinatorConfig } from '../config';
import type { TenantDirectory } from '../tenancy/tenant-directory';
import { ADMIN_PATH, authenticate, authenticateAdmin, type AuthenticatedRequest } from './auth.guard';
import { closeLingering } from './lingering-close';

type Next = (error?: unknown) => void;

/** Content types of YAML definitions; only `POST /v1/workflows` reads them (yamlBody). */
export const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml'];

/** Whether the request carries a body (the test body-parser itself uses: a length or chunked encoding). */
export function hasBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Runs before every body parser: a request that carries a body must hold a valid API key, else
 * it is a 401 and its body is never parsed nor buffered: the connection is closed instead of
 * drained, in stages (closeLingering: FIN after the 401, then what the client still sends is
 * discarded, 8 MiB or 2 s at most), so a client still uploading reads the 401 rather
 * than a reset. Parsing is the expensive part of a request, so it is only ever done for a known
 * tenant. No public route (health checks, file downloads, docs) takes a body.
 */
/**
 * Whether a request goes to the admin API, as the router sees it: paths are matched without
 * regard to case, and an absolute-form target (`POST http://host/v1/admin/...`) routes by its path.
 */
export function isAdminPath(url: string | undefined): boolean {
  let path: string;
  try {
    path = new URL(url ?? '/', 'http://podflow.invalid').pathname.toLowerCase();
  } catch {
    return false;
  }
  return path === ADMIN_PATH || path.startsWith(`${ADMIN_PATH}/`);
}

export function authenticateBeforeBody(directory: Pick<TenantDirectory, 'authenticate' | 'authenticateAdmin'>) {
  return (request: AuthenticatedRequest, response: ServerResponse, next: Next): void => {
    if (!hasBody(request)) return next();
    const admin = isAdminPath(request.url);
    (admin ? authenticateAdmin(request, directory) : authenticate(request, directory)).then(
      () => next(),
      (error: unknown) => {
        response.setHeader('Connection', 'close');
        closeLingering(request);
        next(error);
      },
    );
  };
}

export function yamlBody(config: Pick<CoordinatorConfig, 'MAX_YAML_BYTES'>) {
  const read = text({ type: YAML_TYPES, limit: config.MAX_YAML_BYTES });
  return (request: IncomingMessage, response: ServerResponse, next: Next): void => {
    read(request as never, response as never, (error?: unknown) => {
      if (!isTooLarge(error)) return next(error);
      response.setHeader('Connection', 'close');
      next(
        new PodflowError(
          'PAYLOAD_TOO_LARGE',
          `YAML definition too large: the limit is ${config.MAX_YAML_BYTES} bytes (MAX_YAML_BYTES); send the definition as JSON (Content-Type: application/json, up to MAX_REQUEST_BYTES), or keep large data out of it (run inputs, files)`,
          { limit: config.MAX_YAML_BYTES },
        ),
      );
    });
  };
}

function isTooLarge(error: unknown): boolean {
  return typeof error === 'object' && error !== null && ((error as { type?: unknown }).type === 'entity.too.large' || (error as { status?: unknown }).status === 413);
}
