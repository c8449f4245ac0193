import { Body, Controller, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { ApiKeyId, TenantId } from '../api/auth.guard';
import { createRunBody, listRunsQuery, getRunQuery, parseRequest, resumeRunBody, signFilesBody } from '../api/request-schemas';
import { RunEventsService } from '../streams/run-events.service';
import { TenantDirectory } from '../tenancy/tenant-directory';
import { parseLastEventId } from '../streams/stream-ids';
import { StreamLimiter } from '../streams/stream-limiter';
import { clientGone, writeFrame } from './client-connection';
import { WebhookDeliveries } from '../webhooks/webhook-deliveries';
import { runView } from './run-view';
import { RunsService } from './runs.service';

@ApiTags('runs')
@ApiBearerAuth()
@Controller('v1/runs')
export class RunsController {
  constructor(
    private readonly runs: RunsService,
    private readonly events: RunEventsService,
    private readonly limiter: StreamLimiter,
    private readonly directory: TenantDirectory,
    private readonly webhooks: WebhookDeliveries,
  ) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({ summary: 'Start a run of an inline definition or a registered workflow; the same idempotencyKey returns the same run' })
  @ApiBody({
    schema: {
      type: 'object',
      properties: {
        workflow: { type: 'object', description: 'inline definition (DESIGN.md workflow format)' },
        workflowId: { type: 'string' },
        version: { type: 'integer' },
        inputs: { type: 'object' },
        idempotencyKey: { type: 'string' },
        webhookUrl: { type: 'string', description: 'receives the run\'s completion as a POST signed with the tenant\'s webhook secret' },
        correlationId: { type: 'string', description: 'returned as given in the completion' },
      },
    },
  })
  async create(@TenantId() tenantId: string, @Body() body: unknown) {
    const request = parseRequest(createRunBody, body, 'run request');
    const { id, status } = await this.runs.submit(tenantId, request);
    return { id, status };
  }

  @Get()
  @ApiOperation({ summary: 'List runs, newest first, cursor-paginated' })
  async list(@TenantId() tenantId: string, @Query() query: unknown) {
    return this.runs.list(tenantId, parseRequest(listRunsQuery, query, 'query'));
  }

  @Get(':id')
  @ApiOperation({ summary: 'A run with its nodes, outputs and errors; nodes page in definition order (nodeLimit, default and most 1000; nodeCursor = nextNodeCursor), or nodes=a,b for exactly those' })
  async get(@TenantId() tenantId: string, @Param('id') id: string, @Query() query: unknown) {
    return runView(await this.runs.snapshot(tenantId, id, parseRequest(getRunQuery, query, 'query')));
  }

  @Get(':id/webhook-deliveries')
  @ApiOperation({ summary: "The run's webhook delivery attempts, oldest first: URL, status or error, duration, and whether it is delivered, retrying or failed" })
  async webhookDeliveries(@TenantId() tenantId: string, @Param('id') id: string) {
    await this.runs.get(tenantId, id);
    return { deliveries: await this.webhooks.log(id) };
  }

  @Post(':id/cancel')
  @HttpCode(202)
  @ApiOperation({ summary: 'Cancel a run; running sandboxes are killed' })
  async cancel(@TenantId() tenantId: string, @Param('id') id: string) {
    const state = await this.runs.cancel(tenantId, id);
    return { id: state.id, status: state.status };
  }

  @Post(':id/resume')
  @HttpCode(202)
  @ApiOperation({
    summary:
      'Resume a failed or canceled run: a new run with the same inputs that keeps every succeeded node whose definition and upstream are unchanged, and runs the rest (optionally with an edited definition or another registered version)',
  })
  @ApiBody({
    schema: {
      type: 'object',
      properties: {
        workflow: { type: 'object', description: 'an edited definition of the same workflow (same id); unchanged nodes keep their results' },
        version: { type: 'integer', description: 'a registered version of the run\'s workflow' },
        idempotencyKey: { type: 'string' },
        webhookUrl: { type: 'string' },
        correlationId: { type: 'string' },
      },
    },
  })
  async resume(@TenantId() tenantId: string, @Param('id') id: string, @Body() body: unknown) {
    const run = await this.runs.resume(tenantId, id, parseRequest(resumeRunBody, body ?? {}, 'resume request'));
    return { id: run.id, status: run.status, resumedFrom: id, kept: run.kept };
  }

  @Post(':id/nodes/:nodeId/files/sign')
  @HttpCode(200)
  @ApiOperation({ summary: "Fresh pre-signed URLs for a finished node's files" })
  async sign(@TenantId() tenantId: string, @Param('id') id: string, @Param('nodeId') nodeId: string, @Body() body: unknown) {
    const { ttlSeconds } = parseRequest(signFilesBody, body, 'sign request');
    return this.runs.signFiles(tenantId, id, nodeId, ttlSeconds);
  }

  @Get(':id/events')
  @ApiOperation({
    summary: 'Server-sent events: node and run transitions, live; resumable with Last-Event-ID (an event id, or $ for new events only); ends after the terminal run event',
  })
  async stream(@TenantId() tenantId: string, @ApiKeyId() apiKeyId: string, @Param('id') id: string, @Req() request: Request, @Res() response: Response): Promise<void> {
    // Before the first await: a client that leaves during it must not keep a stream slot.
    const gone = clientGone(response);
    const after = parseLastEventId(request.header('last-event-id'));
    await this.runs.get(tenantId, id); // 404 before the stream starts
    const from = await this.events.startAfter(id, after); // 400 for an id after the run's last event
    if (gone.aborted) return;
    const release = this.limiter.acquire(apiKeyId, 'event stream');
    // A key revoked (or a tenant disabled) while its stream is open ends the stream, with a last frame saying why.
    const revoked = new AbortController();
    const unwatch = this.directory.watchAccess({ tenantId, apiKeyId }, () => revoked.abort());
    try {
      response.status(200).set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
      response.flushHeaders();
      for await (const { id: eventId, event } of this.events.follow(id, AbortSignal.any([gone, revoked.signal]), from)) {
        if (!(await writeFrame(response, `id: ${eventId}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`))) return;
      }
      if (revoked.signal.aborted && !gone.aborted) {
        const error = { code: 'UNAUTHENTICATED', message: 'the API key of this stream was revoked, or its tenant disabled: the stream ends here' };
        await writeFrame(response, `event: error\ndata: ${JSON.stringify({ error })}\n\n`);
      }
      response.end();
    } finally {
      unwatch();
      release();
    }
  }
}
