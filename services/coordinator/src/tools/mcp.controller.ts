import { Controller, Delete, Get, Inject, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiExcludeEndpoint, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { PodflowError } from '@podflow/protocol';
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import { ApiKeyId, TenantId } from '../api/auth.guard';
import { LOGGER } from '../tokens';
import { AgentToolsService } from './agent-tools.service';
import { TOOL_LANGUAGES, toolDescription, toolInput, toolOutput, type ToolName } from './tool-specs';

/**
 * The agent tools as an MCP server (streamable HTTP, stateless: every POST is a whole exchange,
 * answered as JSON), behind the same API-key authentication as the rest of the API: a call runs as
 * the key's tenant. Built on the maintained SDK (@modelcontextprotocol/sdk); no protocol code here.
 */
@ApiTags('tools')
@ApiBearerAuth()
@Controller('v1/mcp')
export class McpController {
  constructor(
    private readonly tools: AgentToolsService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** The SDK, loaded at the first MCP request: it adds about 200 ms to a coordinator's start, which every restart would pay. */
  private sdk?: Promise<{ McpServer: typeof import('@modelcontextprotocol/sdk/server/mcp.js').McpServer; StreamableHTTPServerTransport: typeof import('@modelcontextprotocol/sdk/server/streamableHttp.js').StreamableHTTPServerTransport }>;

  private loadSdk() {
    this.sdk ??= Promise.all([import('@modelcontextprotocol/sdk/server/mcp.js'), import('@modelcontextprotocol/sdk/server/streamableHttp.js')]).then(([mcp, http]) => ({
      McpServer: mcp.McpServer,
      StreamableHTTPServerTransport: http.StreamableHTTPServerTransport,
    }));
    return this.sdk;
  }

  @Post()
  @ApiOperation({ summary: 'MCP (streamable HTTP, stateless): tools/list and tools/call of execute-python, execute-javascript and execute-typescript, as the API key\'s tenant' })
  async handle(@TenantId() tenantId: string, @ApiKeyId() apiKeyId: string, @Req() request: Request, @Res() response: Response): Promise<void> {
    const { McpServer, StreamableHTTPServerTransport } = await this.loadSdk();
    const server = this.serverFor(new McpServer({ name: 'podflow', version: '0.1.0' }), tenantId, apiKeyId);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    response.on('close', () => {
      void transport.close();
      void server.close();
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(request, response, request.body);
    } catch (error) {
      this.logger.error({ err: error }, 'MCP request failed');
      if (!response.headersSent) response.status(500).json({ jsonrpc: '2.0', error: { code: -32603, message: 'internal error' }, id: null });
    }
  }

  @Get()
  @ApiExcludeEndpoint()
  notStreaming(@Res() response: Response): void {
    response.status(405).set('Allow', 'POST').json({ jsonrpc: '2.0', error: { code: -32000, message: 'this MCP server is stateless: POST each request to /v1/mcp (no server-sent event stream, no sessions)' }, id: null });
  }

  @Delete()
  @ApiExcludeEndpoint()
  noSessions(@Res() response: Response): void {
    this.notStreaming(response);
  }

  /** One server per request, its tools bound to the caller's tenant and key. */
  private serverFor(server: McpServer, tenantId: string, apiKeyId: string): McpServer {
    // The SDK keeps its tools in a plain object and looks a call's name up there, where "__proto__"
    // or "toString" would be found on the prototype: the registry gets none, so such a name is
    // answered like any unknown one (agent-tools.e2e.spec.ts calls them).
    const registry = (server as unknown as { _registeredTools?: unknown })._registeredTools;
    if (typeof registry === 'object' && registry !== null) Object.setPrototypeOf(registry, null);
    for (const name of Object.keys(TOOL_LANGUAGES) as ToolName[]) {
      server.registerTool(name, { title: name, description: toolDescription(name), inputSchema: toolInput, outputSchema: toolOutput }, async (input, extra) => {
        try {
          const result = await this.tools.call(tenantId, apiKeyId, name, input, extra.signal);
          return { content: [{ type: 'text', text: JSON.stringify(result) }], structuredContent: result, ...(result.ok ? {} : { isError: true }) };
        } catch (error) {
          // A call that could not start (bad arguments, limits): the agent reads why.
          if (!(error instanceof PodflowError)) throw error;
          return { content: [{ type: 'text', text: `${error.code}: ${error.message}` }], isError: true };
        }
      });
    }
    return server;
  }
}

