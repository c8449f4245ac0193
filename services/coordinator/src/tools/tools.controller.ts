import { Body, Controller, Get, HttpCode, Param, Post, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { PodflowError } from '@podflow/protocol';
import type { Response } from 'express';
import { ApiKeyId, TenantId } from '../api/auth.guard';
import { clientGone } from '../runs/client-connection';
import { AgentToolsService } from './agent-tools.service';
import { isToolName, toolList } from './tool-specs';

/** The agent tools over plain HTTP (the MCP server, mcp.controller.ts, serves the same tools). */
@ApiTags('tools')
@ApiBearerAuth()
@Controller('v1/tools')
export class ToolsController {
  constructor(private readonly tools: AgentToolsService) {}

  @Get()
  @ApiOperation({ summary: 'The agent tools (execute-python, execute-javascript, execute-typescript) with JSON Schemas of their arguments and results' })
  list() {
    return { tools: toolList() };
  }

  @Post(':name')
  @HttpCode(200)
  @ApiOperation({ summary: 'Call an agent tool: the code runs in a fresh sandbox and the answer is its result (ok, result or error, stdout, stderr, files); a failure of the code is ok: false, not an HTTP error' })
  async call(@TenantId() tenantId: string, @ApiKeyId() apiKeyId: string, @Param('name') name: string, @Body() body: unknown, @Res({ passthrough: true }) response: Response) {
    const gone = clientGone(response);
    if (!isToolName(name)) throw new PodflowError('NOT_FOUND', `no tool ${JSON.stringify(name)}; the tools are execute-python, execute-javascript and execute-typescript (GET /v1/tools)`);
    return this.tools.call(tenantId, apiKeyId, name, body, gone);
  }
}
