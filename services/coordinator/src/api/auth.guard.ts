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

/** `Authorization: Bearer <key>` → tenant id, from PODFLOW_API_KEYS (keys compared as sha256). */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, [context.getHandler(), context.getClass()])) return true;
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) {
      throw new PodflowError('UNAUTHENTICATED', 'missing API key: send "Authorization: Bearer <key>" (keys are configured in PODFLOW_API_KEYS)');
    }
    const apiKeyId = hashApiKey(match[1]!);
    const tenantId = this.config.PODFLOW_API_KEYS.get(apiKeyId);
    if (!tenantId) throw new PodflowError('UNAUTHENTICATED', 'unknown API key: check the key, or add it to PODFLOW_API_KEYS as key=tenant');
    request.tenantId = tenantId;
    request.apiKeyId = apiKeyId;
    return true;
  }
}
