import { Inject, Injectable, SetMetadata, createParamDecorator, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { PodflowError } from '@podflow/protocol';
import type { Request } from 'express';
import { hashApiKey, type CoordinatorConfig } from '../config';
import { CONFIG } from '../tokens';

const PUBLIC = 'podflow:public';

/** Marks a route that needs no API key (health checks, pre-signed file downloads, docs). */
export const Public = () => SetMetadata(PUBLIC, true);

export interface AuthenticatedRequest extends Request {
  tenantId?: string;
  /** sha256 of the API key: identifies the key (for per-key limits) without keeping it. */
  apiKeyId?: string;
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

/**
 * Resolves `Authorization: Bearer <key>` to its tenant (keys compared as sha256) and records
 * both on the request. Also called before any body is read (api/request-body.ts), so a request
 * without a valid key never costs more than its headers.
 * @throws PodflowError UNAUTHENTICATED naming what is missing.
 */
export function authenticate(request: AuthenticatedRequest, config: Pick<CoordinatorConfig, 'PODFLOW_API_KEYS'>): void {
  if (request.tenantId && request.apiKeyId) return;
  const header = request.headers.authorization ?? '';
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) {
    throw new PodflowError('UNAUTHENTICATED', 'missing API key: send "Authorization: Bearer <key>" (keys are configured in PODFLOW_API_KEYS)');
  }
  const apiKeyId = hashApiKey(match[1]!);
  const tenantId = config.PODFLOW_API_KEYS.get(apiKeyId);
  if (!tenantId) throw new PodflowError('UNAUTHENTICATED', 'unknown API key: check the key, or add it to PODFLOW_API_KEYS as key=tenant');
  request.tenantId = tenantId;
  request.apiKeyId = apiKeyId;
}

/** Every route but the `@Public()` ones needs an API key (PODFLOW_API_KEYS). */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, [context.getHandler(), context.getClass()])) return true;
    authenticate(context.switchToHttp().getRequest<AuthenticatedRequest>(), this.config);
    return true;
  }
}
