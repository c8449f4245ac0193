/**
 * @podflow/worker: takes `exec` jobs, runs each in a fresh sandbox, reports on `results`.
 * Run it with `node services/worker/dist/main.js` (configuration in the README); embed it with
 * `new PodflowWorker({...}).start()`.
 */
export { PodflowWorker } from './worker';
export type { PodflowWorkerOptions } from './worker';
export { loadWorkerConfig, workerConfigSchema } from './config';
export type { WorkerConfig } from './config';
export { NoopDriver } from './noop-driver';
export { runExecution } from './execution';
