import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { PodflowError } from '@podflow/protocol';
import { InvalidWorkflowError, loadDefinitionText } from '@podflow/workflow';
import { TenantId } from '../api/auth.guard';
import { parseRequest, testNodeBody } from '../api/request-schemas';
import { TestRunsService } from '../runs/test-runs.service';
import { WorkflowRegistry } from './workflow-registry';

@ApiTags('workflows')
@ApiBearerAuth()
@Controller('v1/workflows')
export class WorkflowsController {
  constructor(
    private readonly registry: WorkflowRegistry,
    private readonly tests: TestRunsService,
  ) {}

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

  @Post(':id/nodes/:nodeId/test')
  @HttpCode(202)
  @ApiOperation({
    summary:
      "Test-run one node in a real sandbox: its upstream nodes keep the outputs and files of the tenant's latest succeeded run of the workflow (or fromRun, or sample values under nodes); optionally the node's edited code and the unsaved definition. A test run is not listed among the tenant's runs; read it with GET /v1/runs/:id",
  })
  @ApiBody({
    schema: {
      type: 'object',
      properties: {
        workflow: { type: 'object', description: 'the unsaved definition (same id), instead of the registered one' },
        version: { type: 'integer' },
        code: { type: 'string', description: "the node's code to try" },
        inputs: { type: 'object', description: "run inputs; default: the upstream run's" },
        nodes: { type: 'object', description: 'sample upstream outputs: { "<nodeId>": { "output": {...} } }' },
        fromRun: { type: 'string', description: "the run to take upstream values from; default: the latest succeeded one" },
      },
    },
  })
  async testNode(@TenantId() tenantId: string, @Param('id') id: string, @Param('nodeId') nodeId: string, @Body() body: unknown) {
    return this.tests.testNode(tenantId, id, nodeId, parseRequest(testNodeBody, body ?? {}, 'test request'));
  }
}
