import { Controller, Get, Headers, Inject, Res, type OnApplicationShutdown } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { PodflowError } from '@podflow/protocol';
import type { Response } from 'express';
import { timingSafeEqual } from 'node:crypto';
import { Public } from '../api/auth.guard';
import type { CoordinatorConfig } from '../config';
import { CONFIG } from '../tokens';
import { CoordinatorMetrics } from './coordinator-metrics';

/** Prometheus text at `GET /metrics`; with METRICS_TOKEN set, only for `Authorization: Bearer <token>`. */
@ApiExcludeController()
@Controller()
export class MetricsController implements OnApplicationShutdown {
  constructor(
    private readonly metrics: CoordinatorMetrics,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  @Public()
  @Get('metrics')
  async scrape(@Headers('authorization') authorization: string | undefined, @Res() response: Response): Promise<void> {
    const token = this.config.METRICS_TOKEN;
    if (token !== undefined && !sameSecret(authorization ?? '', `Bearer ${token}`)) {
      throw new PodflowError('UNAUTHENTICATED', '/metrics needs "Authorization: Bearer <METRICS_TOKEN>" on this coordinator');
    }
    const text = await this.metrics.registry.metrics();
    response.status(200).type(this.metrics.registry.contentType).send(text);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.metrics.close();
  }
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
