/**
 * @podflow/coordinator: the NestJS service that accepts runs and advances them.
 * Run it with `node services/coordinator/dist/main.js`; embed it with `createCoordinatorApp(config)`.
 */
export { createCoordinatorApp } from './app';
export { coordinatorConfigSchema, loadCoordinatorConfig } from './config';
export type { CoordinatorConfig } from './config';
