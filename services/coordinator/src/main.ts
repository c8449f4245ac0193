import { createCoordinatorApp } from './app';
import { loadCoordinatorConfig } from './config';

/**
 * Nest closes the app on SIGTERM (enableShutdownHooks); closing needs Redis. When Redis is gone
 * too (an uninstall deletes it with the coordinators), closing would wait for the kubelet's
 * SIGKILL; past this budget the process exits instead. Nothing accepted is lost: run state and
 * queued work live in Redis, and results not yet applied stay queued for another coordinator.
 */
const CLOSE_BUDGET_MS = 15_000;

async function main(): Promise<void> {
  const config = loadCoordinatorConfig(process.env);
  const app = await createCoordinatorApp(config);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      setTimeout(() => {
        process.stderr.write(`${JSON.stringify({ level: 50, name: 'podflow-coordinator', msg: 'coordinator did not close within its budget (Redis unreachable?); exiting', budgetMs: CLOSE_BUDGET_MS })}\n`);
        process.exit(1);
      }, CLOSE_BUDGET_MS).unref();
    });
  }
  await app.listen(config.PORT, config.HOST);
  process.stdout.write(`${JSON.stringify({ level: 30, name: 'podflow-coordinator', msg: 'coordinator listening', port: config.PORT, docs: `${config.PUBLIC_URL}/docs` })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`podflow coordinator failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
