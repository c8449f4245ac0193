import { QUEUE_NAMES, type SubmissionMessage } from '@podflow/protocol';
import { Queue } from 'bullmq';
import { TENANT, startStack, type Stack } from '../support/stack';
import { OTHER_KEY, call, eventually, expectHealthy } from './support/api';

// Issue 10, item 2 (coordinator side): a node may ask for egress (`network: true`) only when the
// operator grants it to the tenant (EGRESS_TENANTS). Here only "globex" is granted; "acme" is not.

const code = 'def main(args):\n    return {}\n';
const asking = { id: 'fetcher', nodes: [{ id: 'fetch', language: 'python', code, network: true }, { id: 'local', language: 'python', code }] };

/** Then the refusal is a 403 EGRESS_NOT_GRANTED naming the node, the tenant and the variable. */
function expectRefused(response: { status: number; json: any }) { // eslint-disable-line @typescript-eslint/no-explicit-any
  expect({ status: response.status, code: response.json?.error?.code, message: response.json?.error?.message }).toEqual({
    status: 403,
    code: 'EGRESS_NOT_GRANTED',
    message: expect.stringMatching(new RegExp(`node "fetch" .*asks for network egress.*tenant "${TENANT}" is not granted egress.*EGRESS_TENANTS`)),
  });
}

describe('egress grants (issue 10, item 2)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { EGRESS_TENANTS: 'globex' } });
  });
  afterAll(() => stack?.stop());
  afterEach(() => expectHealthy(stack));

  it('refuses network: true without the grant on POST /v1/runs, /v1/workflows and /v1/executions', async () => {
    expectRefused(await call(stack, 'POST', '/v1/runs', { body: { workflow: asking } }));
    expectRefused(await call(stack, 'POST', '/v1/workflows', { body: asking }));
    const execution = await call(stack, 'POST', '/v1/executions?wait=true', { body: { language: 'python', code, network: true } });
    expect({ status: execution.status, code: execution.json?.error?.code }).toEqual({ status: 403, code: 'EGRESS_NOT_GRANTED' });
    // Nothing was created for the refused requests.
    const runs = await call(stack, 'GET', '/v1/runs');
    expect(runs.json.runs).toEqual([]);
  });

  it('accepts network: true for a granted tenant', async () => {
    const registered = await call(stack, 'POST', '/v1/workflows', { key: OTHER_KEY, body: asking });
    expect(registered.status).toBe(201);
    const run = await call(stack, 'POST', '/v1/runs', { key: OTHER_KEY, body: { workflowId: 'fetcher' } });
    expect(run.status).toBe(202);
    await call(stack, 'POST', `/v1/runs/${run.json.id}/cancel`, { key: OTHER_KEY });
  });

  it('checks a registered workflow again when a run starts', async () => {
    // A version registered while the tenant was granted (copied here, as a revoked grant would leave it).
    expect((await call(stack, 'POST', '/v1/workflows', { key: OTHER_KEY, body: asking })).status).toBe(201);
    const granted = await stack.redis.hgetall(stack.keys.workflow('globex', 'fetcher'));
    await stack.redis.hset(stack.keys.workflow(TENANT, 'fetcher'), granted);
    expect((await call(stack, 'GET', '/v1/workflows/fetcher')).status).toBe(200);
    expectRefused(await call(stack, 'POST', '/v1/runs', { body: { workflowId: 'fetcher' } }));
  });

  it('fails a queue submission without the grant with the reason, instead of dropping it', async () => {
    const queue = new Queue<SubmissionMessage>(QUEUE_NAMES.submissions, { connection: stack.redis, prefix: stack.bullPrefix(QUEUE_NAMES.submissions) });
    try {
      const job = await queue.add('submit', { tenantId: TENANT, workflow: asking as unknown as SubmissionMessage['workflow'] });
      const failed = await eventually(async () => {
        const state = await queue.getJobState(job.id!);
        return state === 'failed' ? await queue.getJob(job.id!) : undefined;
      }, 'the submission to be rejected');
      expect(failed?.failedReason).toMatch(/^EGRESS_NOT_GRANTED: node "fetch" .*EGRESS_TENANTS/);
      expect(failed?.attemptsMade).toBe(1);
    } finally {
      await queue.close();
    }
  });
});
