import { Body, Controller, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { TenantId } from '../api/auth.guard';
import { createExecutionBody, parseRequest } from '../api/request-schemas';
import { RunEventsService } from './run-events.service';
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
      },
    },
  })
  async create(@TenantId() tenantId: string, @Body() body: unknown, @Query('wait') wait: string | undefined, @Res() response: Response): Promise<void> {
    const request = parseRequest(createExecutionBody, body, 'execution request');
    // One node whose args are exactly `args`: each key is bound to the same run input.
    const bindings = Object.fromEntries(Object.keys(request.args).map((key) => [key, `$lookup(inputs, ${JSON.stringify(key)})`]));
    const { id } = await this.runs.submit(tenantId, {
      workflow: {
        id: 'execution',
        nodes: [{ id: NODE_ID, language: request.language, code: request.code, inputs: bindings, dependencies: request.dependencies, ...(request.timeout !== undefined ? { timeout: request.timeout } : {}) }],
      },
      inputs: request.args as never,
    });
    if (wait !== 'true' && wait !== '1') {
      response.status(202).json({ id, status: 'queued' });
      return;
    }
    const state = await this.runs.get(tenantId, id);
    await this.events.waitUntilFinished(id, state.workflow.nodes[0]!.timeoutMs * (state.workflow.nodes[0]!.retries.max + 1) + WAIT_MARGIN_MS);
    const view = runView(await this.runs.getWithOutputs(tenantId, id));
    const node = view.nodes[NODE_ID] as Record<string, unknown>;
    response.status(200).json({ id, ...node });
  }
}
