import { Controller, Get, HttpCode, Inject, Res } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { Queue } from 'bullmq';
import type { Response } from 'express';
import type { RedisClient } from '@podflow/redis';
import { EXEC_QUEUE, REDIS } from '../tokens';
import { Public } from './auth.guard';

@ApiTags('health')
@Controller()
export class HealthController {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(EXEC_QUEUE) private readonly execQueue: Queue,
  ) {}

  @Public()
  @Get('healthz')
  @HttpCode(200)
  healthz() {
    return { status: 'ok' };
  }

  /** Ready when Redis answers and the exec queue can be read. */
  @Public()
  @Get('readyz')
  async readyz(@Res() response: Response): Promise<void> {
    try {
      await this.redis.ping();
      const counts = await this.execQueue.getJobCounts('waiting', 'active', 'delayed');
      response.status(200).json({ status: 'ready', redis: 'ok', exec: counts });
    } catch (error) {
      response.status(503).json({ status: 'not ready', reason: error instanceof Error ? error.message : String(error) });
    }
  }
}
