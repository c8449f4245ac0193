/**
 * @podflow/client: talk to podflow from another service, over HTTP or the submissions queue.
 *
 * ```ts
 * const client = new PodflowClient({ url: 'http://localhost:8080', apiKey: 'dev-key' });
 * const { id } = await client.submitRun({ workflow, inputs: { name: 'Ada' } });
 * const run = await client.waitForRun(id);
 *
 * const submitter = new QueueSubmitter(redis, { prefix: 'podflow' });
 * const completion = await submitter.submitAndWait({ tenantId: 'acme', workflowId: 'greet', inputs: {} });
 * ```
 * The `podflow` CLI (src/cli.ts) is built on the same client. README.md has the whole guide.
 */
export { PodflowClient } from './http-client';
export type { NodeView, PodflowClientOptions, RunView } from './http-client';
export { QueueSubmitter } from './queue-submitter';
export type { QueueSubmitterOptions } from './queue-submitter';
export { CompletionConsumer, parseCompletion } from './completion-consumer';
export type { CompletionConsumerOptions } from './completion-consumer';
export { SIGNATURE_HEADER, verifySignature } from '@podflow/protocol';
export type { RunCompletion, SubmissionMessage } from '@podflow/protocol';
export { parseKeyValue } from './key-value';
