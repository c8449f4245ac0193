import { Body, Controller, Get, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { PodflowError } from '@podflow/protocol';
import { InvalidWorkflowError, loadDefinitionText } from '@podflow/workflow';
import { TenantId } from '../api/auth.guard';
import { WorkflowRegistry } from './workflow-registry';

@ApiTags('workflows')
@ApiBearerAuth()
@Controller('v1/workflows')
export class WorkflowsController {
  constructor(private readonly registry: WorkflowRegistry) {}

  @Post()
  @ApiOperation({ summary: 'Register a definition (JSON body, or YAML with Content-Type application/yaml); returns { id, version }' })
  @ApiBody({ schema: { type: 'object', description: 'a workflow definition (DESIGN.md format)' } })
  register(@TenantId() tenantId: string, @Body() body: unknown) {
    if (body === undefined || body === null || (typeof body === 'object' && Object.keys(body).length === 0)) {
      throw new PodflowError('BAD_REQUEST', 'empty body: send a workflow definition as JSON, or as YAML with Content-Type: application/yaml');
    }
    // YAML arrives as text (api/request-body.ts) and is parsed within bounds, with line and column in errors.
    if (typeof body !== 'string') return this.registry.register(tenantId, body);
    const loaded = loadDefinitionText(body);
    if (loaded.issues.length > 0) throw new InvalidWorkflowError(loaded.issues);
    return this.registry.register(tenantId, loaded.value);
  }

  @Get(':id')
  @ApiOperation({ summary: 'Read a registered workflow (latest version unless ?version=N)' })
  async get(@TenantId() tenantId: string, @Param('id') id: string, @Query('version') version?: string) {
    if (version !== undefined && !/^[1-9]\d*$/.test(version)) throw new PodflowError('BAD_REQUEST', `version must be a positive integer, got "${version}"`);
    const record = await this.registry.get(tenantId, id, version ? Number(version) : undefined);
    return { id: record.id, version: record.version, createdAt: record.createdAt, definition: record.definition };
  }
}
