import { Body, Controller, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { PodflowError } from '@podflow/protocol';
import type { Response } from 'express';
import { ApiKeyId, TenantId } from '../api/auth.guard';
import { createExecutionBody, parseRequest } from '../api/request-schemas';
import { RunEventsService } from '../streams/run-events.service';
import { StreamLimiter } from '../streams/stream-limiter';
import { TenantDirectory } from '../tenancy/tenant-directory';
import { bindingsForArgs } from './args-bindings';
import { clientGone } from './client-connection';
import { runView } from './run-view';
import { RunsService } from './runs.service';

/** Node id of the single node of an ad-hoc execution. */
const NODE_ID = 'main';
/** Extra wait beyond the node timeout, for queueing and sandbox start. */
const WAIT_MARGIN_MS = 60_000;

@ApiTags('executions')
@ApiBearerAuth()
@Controller('v1/executions')
export class ExecutionsController {
  constructor(
    private readonly runs: RunsService,
    private readonly events: RunEventsService,
    private readonly limiter: StreamLimiter,
    private readonly directory: TenantDirectory,
  ) {}

  @Post()
  @ApiOperation({ summary: 'Run one Code node without a workflow; with ?wait=true the response is the node result' })
  @ApiBody({
    schema: {
      type: 'object',
      required: ['language', 'code'],
      properties: {
        language: { enum: ['python', 'typescript', 'javascript'] },
        code: { type: 'string' },
        args: { type: 'object' },
        dependencies: { type: 'array', items: { type: 'string' } },
        timeout: { type: 'string', example: '30s' },
        network: { type: 'boolean', description: 'ask for network egress; only for tenants listed in EGRESS_TENANTS' },
      },
    },
  })
  async create(
    @TenantId() tenantId: string,
    @ApiKeyId() apiKeyId: string,
    @Body() body: unknown,
    @Query('wait') wait: string | undefined,
    @Res() response: Response,
  ): Promise<void> {
    // Before the first await: a client that leaves during it must not keep its wait slot.
    const gone = clientGone(response);
    const request = parseRequest(createExecutionBody, body, 'execution request');
    const waiting = wait === 'true' || wait === '1';
    // Taken before the run exists: a refused wait must not leave a run nobody asked for.
    const release = waiting ? this.limiter.acquire(apiKeyId, 'waiting execution (?wait=true)') : () => undefined;
    try {
      // One node whose args are exactly `args`: each key is bound to the same run input.
      const bindings = bindingsForArgs(request.args, 'execution request');
      const { id, workflow } = await this.runs.submit(tenantId, {
        workflow: {
          id: 'execution',
          nodes: [
            {
              id: NODE_ID,
              language: request.language,
              code: request.code,
              inputs: bindings,
              dependencies: request.dependencies,
              ...(request.timeout !== undefined ? { timeout: request.timeout } : {}),
              ...(request.network !== undefined ? { network: request.network } : {}),
            },
          ],
        },
        inputs: request.args,
      });
      if (!waiting) {
        response.status(202).json({ id, status: 'queued' });
        return;
      }
      // A client that goes away ends the wait (the execution itself goes on; cancel it to stop it).
      if (gone.aborted) return;
      const node = workflow.nodes[0]!;
      // So does a key revoked (or a tenant disabled) meanwhile: 401, as any later call would get.
      const revoked = new AbortController();
      const unwatch = this.directory.watchAccess({ tenantId, apiKeyId }, () => revoked.abort());
      try {
        await this.events.waitUntilFinished(id, node.timeoutMs * (node.retries.max + 1) + WAIT_MARGIN_MS, AbortSignal.any([gone, revoked.signal]));
      } finally {
        unwatch();
      }
      if (gone.aborted) return;
      if (revoked.signal.aborted) throw new PodflowError('UNAUTHENTICATED', `the API key was revoked, or tenant "${tenantId}" disabled, while this execution was awaited; it goes on as run ${id} (cancel it with a valid key)`);
      const view = runView(await this.runs.snapshot(tenantId, id, { nodes: [NODE_ID] }));
      response.status(200).json({ id, ...(view.nodes[NODE_ID] as Record<string, unknown>) });
    } finally {
      release();
    }
  }
}
