import { Injectable, SetMetadata, createParamDecorator, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { PodflowError } from '@podflow/protocol';
import type { Request } from 'express';
import { TenantDirectory } from '../tenancy/tenant-directory';

const PUBLIC = 'podflow:public';

/** Marks a route that needs no API key (health checks, pre-signed file downloads, docs). */
export const Public = () => SetMetadata(PUBLIC, true);

export interface AuthenticatedRequest extends Request {
  tenantId?: string;
  /** sha256 of the API key: identifies the key (for per-key limits) without keeping it. */
  apiKeyId?: string;
  /** The admin key was presented and checked (admin routes only). */
  admin?: boolean;
}

/** The tenant the request's API key belongs to. */
export const TenantId = createParamDecorator((_: unknown, context: ExecutionContext): string => {
  const tenantId = context.switchToHttp().getRequest<AuthenticatedRequest>().tenantId;
  if (!tenantId) throw new PodflowError('UNAUTHENTICATED', 'no tenant on this request');
  return tenantId;
});

/** The hash of the request's API key, for per-key limits. */
export const ApiKeyId = createParamDecorator((_: unknown, context: ExecutionContext): string => {
  const apiKeyId = context.switchToHttp().getRequest<AuthenticatedRequest>().apiKeyId;
  if (!apiKeyId) throw new PodflowError('UNAUTHENTICATED', 'no API key on this request');
  return apiKeyId;
});

/** Marks the admin API's routes: only PODFLOW_ADMIN_KEY opens them, never a tenant key. */
export const ADMIN = 'podflow:admin';
export const AdminOnly = () => SetMetadata(ADMIN, true);

/** Path prefix of the admin API (the before-body check cannot see route metadata yet). */
export const ADMIN_PATH = '/v1/admin';

/** The bearer token of a request, or undefined when there is none. */
export function bearerOf(request: Pick<Request, 'headers'>): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
  return match?.[1];
}

/**
 * Resolves `Authorization: Bearer <key>` to its tenant (TenantDirectory: bootstrap keys, then
 * issued ones) and records both on the request. Also called before any body is read
 * (api/request-body.ts), so a request without a valid key never costs more than its headers.
 * @throws PodflowError UNAUTHENTICATED naming what is missing or wrong, FORBIDDEN for a disabled tenant.
 */
export async function authenticate(request: AuthenticatedRequest, directory: Pick<TenantDirectory, 'authenticate'>): Promise<void> {
  if (request.tenantId && request.apiKeyId) return;
  const key = bearerOf(request);
  if (key === undefined) throw new PodflowError('UNAUTHENTICATED', 'missing API key: send "Authorization: Bearer <key>"');
  const caller = await directory.authenticate(key);
  request.tenantId = caller.tenantId;
  request.apiKeyId = caller.apiKeyId;
}

/** Admin routes: the admin key only (TenantDirectory.authenticateAdmin); recorded on the request once checked. */
export async function authenticateAdmin(request: AuthenticatedRequest, directory: Pick<TenantDirectory, 'authenticateAdmin'>): Promise<void> {
  if (request.admin) return;
  await directory.authenticateAdmin(bearerOf(request));
  request.admin = true;
}

/** Every route but the `@Public()` ones needs a tenant's API key; `@AdminOnly()` ones the admin key. */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly directory: TenantDirectory,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, targets)) return true;
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    if (this.reflector.getAllAndOverride<boolean>(ADMIN, targets)) await authenticateAdmin(request, this.directory);
    else await authenticate(request, this.directory);
    return true;
  }
}
