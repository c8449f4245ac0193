import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { PodflowError } from '@podflow/protocol';
import { AdminOnly } from '../api/auth.guard';
import { parseRequest } from '../api/request-schemas';
import { TENANT_ID, createTenantBody, issueKeyBody, updateTenantBody } from '../tenancy/api-keys';
import { TenantDirectory } from '../tenancy/tenant-directory';
import { UsageStore, usageRange } from '../tenancy/usage';

const KEY_ID = /^key_[A-Za-z0-9_-]{1,64}$/;

function tenantParam(id: string): string {
  if (!TENANT_ID.test(id)) throw new PodflowError('BAD_REQUEST', `"${id.slice(0, 80)}" is not a tenant id: 1-64 letters, digits, _ or -`);
  return id;
}

function keyParam(id: string): string {
  if (!KEY_ID.test(id)) throw new PodflowError('BAD_REQUEST', `"${id.slice(0, 80)}" is not an API key id: key ids look like key_AbC123…, as the admin API lists them`);
  return id;
}

/**
 * The admin API: tenants and their API keys as data (TenantDirectory). Only PODFLOW_ADMIN_KEY
 * opens it (a tenant's key gets 403, no key 401; with no admin key configured it answers 404).
 * Changes apply on every coordinator within milliseconds (2 s at worst), without a restart.
 */
@ApiTags('admin')
@ApiBearerAuth()
@AdminOnly()
@Controller('v1/admin')
export class AdminController {
  constructor(
    private readonly directory: TenantDirectory,
    private readonly usage: UsageStore,
  ) {}

  @Get('usage')
  @ApiOperation({ summary: "Every tenant's usage, hourly, over ?from=&to= (ISO or epoch ms, default the last 24 h)" })
  async allUsage(@Query('from') from?: string, @Query('to') to?: string) {
    const range = usageRange(from, to);
    return { tenants: await this.usage.allTenants(range.from, range.to) };
  }

  @Post('tenants')
  @ApiOperation({ summary: 'Create a tenant: { id, name? }' })
  @ApiBody({ schema: { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' } }, required: ['id'] } })
  createTenant(@Body() body: unknown) {
    const { id, name } = parseRequest(createTenantBody, body, 'tenant');
    return this.directory.createTenant(id, name);
  }

  @Get('tenants')
  @ApiOperation({ summary: 'List tenants (created here, and the PODFLOW_API_KEYS ones as source "environment")' })
  async listTenants() {
    return { tenants: await this.directory.listTenants() };
  }

  @Get('tenants/:tenantId')
  @ApiOperation({ summary: 'Read a tenant' })
  getTenant(@Param('tenantId') tenantId: string) {
    return this.directory.getTenant(tenantParam(tenantId));
  }

  @Patch('tenants/:tenantId')
  @ApiOperation({ summary: 'Rename, disable ({ disabled: true }: every key of it refused) or enable a tenant; set its weight and maxInFlight (null: back to the operator setting)' })
  updateTenant(@Param('tenantId') tenantId: string, @Body() body: unknown) {
    return this.directory.updateTenant(tenantParam(tenantId), parseRequest(updateTenantBody, body, 'tenant change'));
  }

  @Post('tenants/:tenantId/keys')
  @ApiOperation({ summary: 'Issue an API key: { name }; the answer holds the key, shown this once' })
  issueKey(@Param('tenantId') tenantId: string, @Body() body: unknown) {
    return this.directory.issueKey(tenantParam(tenantId), parseRequest(issueKeyBody, body, 'API key').name);
  }

  @Get('tenants/:tenantId/keys')
  @ApiOperation({ summary: "List a tenant's keys: id, name, created, last used, revoked (never the key)" })
  async listKeys(@Param('tenantId') tenantId: string) {
    return { keys: await this.directory.listKeys(tenantParam(tenantId)) };
  }

  @Post('tenants/:tenantId/keys/:keyId/rotate')
  @ApiOperation({ summary: 'Replace a key: a new key with the same name (shown this once); the old one is revoked' })
  rotateKey(@Param('tenantId') tenantId: string, @Param('keyId') keyId: string) {
    return this.directory.rotateKey(tenantParam(tenantId), keyParam(keyId));
  }

  @Delete('tenants/:tenantId/keys/:keyId')
  @HttpCode(200)
  @ApiOperation({ summary: 'Revoke a key: refused on every coordinator from now on' })
  revokeKey(@Param('tenantId') tenantId: string, @Param('keyId') keyId: string) {
    return this.directory.revokeKey(tenantParam(tenantId), keyParam(keyId));
  }
}
