/**
 * @podflow/client: talk to podflow from another service, over HTTP or the submissions queue.
 *
 * ```ts
 * const client = new PodflowClient({ url: 'http://localhost:8080', apiKey: 'dev-key' });
 * const { id } = await client.submitRun({ workflow, inputs: { name: 'Ada' } });
 * const run = await client.waitForRun(id);
 * ```
 * The `podflow` CLI (src/cli.ts) is built on the same client.
 */
export { PodflowClient } from './http-client';
export type { NodeView, PodflowClientOptions, RunView } from './http-client';
export { QueueSubmitter } from './queue-submitter';
export { parseKeyValue } from './key-value';
