import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { json } from 'express';
import type { Logger } from 'pino';
import { jsonDepthGuard } from './api/json-depth.middleware';
import { authenticateBeforeBody } from './api/request-body';
import { AppModule } from './app.module';
import { TenantDirectory } from './tenancy/tenant-directory';
import type { CoordinatorConfig } from './config';
import { LOGGER } from './tokens';

/** Builds the coordinator app (not listening yet): authentication before bodies, body parsers, OpenAPI at /docs, shutdown hooks. */
export async function createCoordinatorApp(config: CoordinatorConfig): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), { bodyParser: false, logger: ['error', 'warn'] });
  const logger = app.get<Logger>(LOGGER);
  app.useLogger({
    log: (message: unknown) => logger.info(String(message)),
    error: (message: unknown, trace?: string) => logger.error({ trace }, String(message)),
    warn: (message: unknown) => logger.warn(String(message)),
    debug: (message: unknown) => logger.debug(String(message)),
    verbose: (message: unknown) => logger.trace(String(message)),
  });
  // Authenticated before any body is read; YAML is read only by the route that takes it (AppModule).
  app.use(authenticateBeforeBody(app.get(TenantDirectory)));
  app.use(json({ limit: config.MAX_REQUEST_BYTES }));
  app.use(jsonDepthGuard());
  app.enableShutdownHooks();
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder().setTitle('podflow').setDescription('Runs workflows of Code nodes in sandboxes').setVersion('v1').addBearerAuth().build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/openapi.json' });
  return app;
}
