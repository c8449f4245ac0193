import { createCoordinatorApp } from './app';
import { loadCoordinatorConfig } from './config';

async function main(): Promise<void> {
  const config = loadCoordinatorConfig(process.env);
  const app = await createCoordinatorApp(config);
  await app.listen(config.PORT, config.HOST);
  process.stdout.write(`${JSON.stringify({ level: 30, name: 'podflow-coordinator', msg: 'coordinator listening', port: config.PORT, docs: `${config.PUBLIC_URL}/docs` })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`podflow coordinator failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
