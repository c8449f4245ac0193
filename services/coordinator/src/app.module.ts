import { Inject, Module, RequestMethod, type DynamicModule, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { AdminController } from './admin/admin.controller';
import { ApiKeyGuard } from './api/auth.guard';
import { ErrorFilter } from './api/error.filter';
import { HealthController } from './api/health.controller';
import { yamlBody } from './api/request-body';
import type { ObjectStore } from '@podflow/storage';
import type { CoordinatorConfig } from './config';
import { FilesController } from './files/files.controller';
import { InfraModule } from './infra/infra.module';
import { SubmissionsProcessor } from './ingress/submissions.processor';
import { Admission } from './orchestration/admission';
import { Definitions } from './orchestration/definitions';
import { Orchestrator } from './orchestration/orchestrator.service';
import { OutboxExecutor } from './orchestration/outbox-executor';
import { OutboxSweeper } from './orchestration/outbox-sweeper';
import { GivenUpSweep } from './orchestration/given-up-sweep';
import { ResultsProcessor } from './orchestration/results.processor';
import { RunPayloads } from './orchestration/run-payloads';
import { RunStore } from './orchestration/run-store';
import { ExecutionsController } from './runs/executions.controller';
import { RunEventHub } from './streams/run-event-hub';
import { RunEventsService } from './streams/run-events.service';
import { StreamLimiter } from './streams/stream-limiter';
import { RunsController } from './runs/runs.controller';
import { RunsService } from './runs/runs.service';
import { TestRunsService } from './runs/test-runs.service';
import { AgentToolsService } from './tools/agent-tools.service';
import { McpController } from './tools/mcp.controller';
import { ToolsController } from './tools/tools.controller';
import { RunRateLimiter } from './tenancy/run-rate';
import { RunsInProgressLimit } from './tenancy/runs-in-progress';
import { UsageStore } from './tenancy/usage';
import { UsageController } from './tenancy/usage.controller';
import { TenantDirectory } from './tenancy/tenant-directory';
import { WorkflowRegistry } from './workflows/workflow-registry';
import { CONFIG, OBJECT_STORE } from './tokens';
import { WorkflowsController } from './workflows/workflows.controller';
import { RunNotifier } from './notify/run-notifier';
import { CoordinatorMetrics } from './metrics/coordinator-metrics';
import { MetricsController } from './metrics/metrics.controller';
import { WebhookDeliveries } from './webhooks/webhook-deliveries';
import { WebhookSecrets } from './webhooks/webhook-secrets';
import { WebhooksController } from './webhooks/webhooks.controller';

@Module({})
export class AppModule implements NestModule {
  constructor(@Inject(CONFIG) private readonly config: CoordinatorConfig) {}

  /** YAML is parsed only where a definition may be posted as written, with its own size limit. */
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(yamlBody(this.config)).forRoutes({ path: 'v1/workflows', method: RequestMethod.POST });
  }

  static forRoot(config: CoordinatorConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [InfraModule.forRoot(config)],
      controllers: [HealthController, RunsController, ExecutionsController, WorkflowsController, FilesController, AdminController, UsageController, WebhooksController, MetricsController, ToolsController, McpController],
      providers: [
        { provide: APP_GUARD, useClass: ApiKeyGuard },
        { provide: APP_FILTER, useClass: ErrorFilter },
        TenantDirectory,
        CoordinatorMetrics,
        RunRateLimiter,
        RunsInProgressLimit,
        UsageStore,
        RunStore,
        {
          provide: RunPayloads,
          inject: [OBJECT_STORE, CONFIG],
          useFactory: (store: ObjectStore, c: CoordinatorConfig) =>
            new RunPayloads(store, { inlineMaxBytes: c.OUTPUT_INLINE_MAX_BYTES, cacheMaxBytes: c.PAYLOAD_CACHE_MAX_BYTES }),
        },
        Definitions,
        Admission,
        WebhookSecrets,
        WebhookDeliveries,
        RunNotifier,
        OutboxExecutor,
        Orchestrator,
        ResultsProcessor,
        OutboxSweeper,
        GivenUpSweep,
        SubmissionsProcessor,
        RunsService,
        TestRunsService,
        AgentToolsService,
        RunEventHub,
        RunEventsService,
        StreamLimiter,
        WorkflowRegistry,
      ],
    };
  }
}
