import { startShutdownWatchdog, type RedisClient } from '@podflow/redis';
import { createCoordinatorApp } from './app';
import { loadCoordinatorConfig } from './config';
import { REDIS } from './tokens';

async function main(): Promise<void> {
  const config = loadCoordinatorConfig(process.env);
  const app = await createCoordinatorApp(config);
  // Nest closes the app on SIGTERM (enableShutdownHooks), which needs Redis. When Redis is gone
  // too (an uninstall deletes it with the coordinators), exit instead of waiting for SIGKILL.
  const redis = app.get<RedisClient>(REDIS);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      startShutdownWatchdog({
        ping: () => redis.ping(),
        onStuck: (checks) => {
          process.stderr.write(`${JSON.stringify({ level: 50, name: 'podflow-coordinator', msg: 'Redis does not answer while the coordinator closes; exiting', checks })}\n`);
          process.exit(1);
        },
      });
    });
  }
  await app.listen(config.PORT, config.HOST);
  process.stdout.write(`${JSON.stringify({ level: 30, name: 'podflow-coordinator', msg: 'coordinator listening', port: config.PORT, docs: `${config.PUBLIC_URL}/docs` })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`podflow coordinator failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
