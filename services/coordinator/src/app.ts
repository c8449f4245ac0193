import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { json, text } from 'express';
import type { Logger } from 'pino';
import { jsonDepthGuard } from './api/json-depth.middleware';
import { AppModule } from './app.module';
import type { CoordinatorConfig } from './config';
import { LOGGER } from './tokens';
import { parse as parseYaml } from 'yaml';

/** Builds the coordinator app (not listening yet): body parsers, OpenAPI at /docs, shutdown hooks. */
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
  app.use(json({ limit: config.MAX_REQUEST_BYTES }));
  // YAML definitions may be posted as they are written.
  app.use(text({ type: ['application/yaml', 'application/x-yaml', 'text/yaml'], limit: config.MAX_REQUEST_BYTES }));
  app.use((request: { body?: unknown; is(type: string[]): string | false }, _response: unknown, next: (error?: unknown) => void) => {
    if (typeof request.body === 'string' && request.is(['application/yaml', 'application/x-yaml', 'text/yaml'])) {
      try {
        request.body = parseYaml(request.body);
      } catch {
        // Leave the string: parseWorkflow reports YAML errors with line and column.
      }
    }
    next();
  });
  app.use(jsonDepthGuard());
  app.enableShutdownHooks();
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder().setTitle('podflow').setDescription('Runs workflows of Code nodes in sandboxes').setVersion('v1').addBearerAuth().build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/openapi.json' });
  return app;
}
