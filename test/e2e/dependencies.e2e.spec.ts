import { QueueSubmitter } from '@podflow/client';
import { QUEUE_NAMES, type ExecJob } from '@podflow/protocol';
import { Queue } from 'bullmq';
import { startStack, type Stack } from '../support/stack';

/**
 * Declared dependencies are checked at submit, before anything runs: bad specs and packages the
 * operator's or the tenant's lists refuse are answered 400 INVALID_DEPENDENCY naming the spec.
 * No workers: nothing here may get as far as a sandbox.
 */
const POLICY = {
  deny: ['*:left-pad'],
  tenants: {
    acme: { allow: ['pypi:tabulate', 'npm:dayjs', 'npm:left-pad'] },
    globex: { deny: ['pypi:requests'] },
  },
};
const KEYS = { acme: 'test-key', globex: 'other-key' } as const;

type ErrorBody = { error: { code: string; message: string; details?: { issues?: Array<{ path: string; code?: string }> } } };

const node = (language: string, dependencies: string[]) => ({
  id: 'step',
  language,
  code: language === 'python' ? 'def main(args):\n    return {}\n' : 'export function main() { return {}; }',
  dependencies,
});

describe('dependencies', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 0, env: { DEPENDENCY_POLICY: JSON.stringify(POLICY) } });
  });
  afterAll(() => stack?.stop());

  /** When a request is posted as a tenant, then its status and error body. */
  async function post(path: string, body: unknown, tenant: keyof typeof KEYS = 'acme'): Promise<{ status: number; body: ErrorBody & { id?: string } }> {
    const response = await fetch(`${stack.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS[tenant]}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as ErrorBody & { id?: string } };
  }

  const run = (language: string, dependencies: string[], tenant: keyof typeof KEYS = 'acme') =>
    post('/v1/runs', { workflow: { id: 'deps', nodes: [node(language, dependencies)] } }, tenant);

  it.each([
    ['a URL', 'python', 'https://example.com/tabulate-0.9.0.tar.gz', /is a URL/],
    ['a local path', 'python', './vendor/tabulate', /is a local path/],
    ['a VCS ref', 'python', 'git+https://github.com/astanin/python-tabulate', /is a VCS reference/],
    ['--index-url', 'python', '--index-url x', /is an installer option \("--index-url"\)/],
    ['-e', 'python', '-e .', /is an installer option \("-e"\)/],
    ['shell text', 'python', 'tabulate; rm -rf /', /contains shell syntax/],
    ['a direct reference', 'python', 'tabulate @ https://example.com/t.whl', /direct reference/],
    ['an npm alias', 'typescript', 'dayjs@npm:evil@1', /is an npm alias/],
    ['a GitHub shorthand', 'javascript', 'iamkun/dayjs', /GitHub "user\/repo" shorthand/],
    ['a file: reference', 'javascript', 'file:../dayjs', /local path/],
  ])('rejects %s with 400 INVALID_DEPENDENCY naming the spec', async (_what, language, spec, kind) => {
    const { status, body } = await run(language, ['tabulate', spec].filter((s) => language === 'python' || s !== 'tabulate'));
    expect(status).toBe(400);
    expect(body.error.code).toBe('INVALID_DEPENDENCY');
    expect(body.error.message).toContain(JSON.stringify(spec));
    expect(body.error.message).toMatch(kind);
    expect(body.error.message).toMatch(/node "step" nodes\[0\]\.dependencies\[\d\]: /);
    expect(body.error.details?.issues).toEqual([expect.objectContaining({ code: 'INVALID_DEPENDENCY' })]);
  });

  it('answers POST /v1/executions and POST /v1/workflows with a bad dependency the same way', async () => {
    const execution = await post('/v1/executions?wait=true', { language: 'python', code: 'def main(args):\n    return {}\n', dependencies: ['-e .'] });
    expect(execution.status).toBe(400);
    expect(execution.body.error.code).toBe('INVALID_DEPENDENCY');
    expect(execution.body.error.message).toMatch(/"-e \." is an installer option/);

    const registered = await post('/v1/workflows', { id: 'deps', nodes: [node('typescript', ['github:iamkun/dayjs'])] });
    expect(registered.status).toBe(400);
    expect(registered.body.error.code).toBe('INVALID_DEPENDENCY');
    expect(registered.body.error.message).toMatch(/"github:iamkun\/dayjs" is a hosted git repository reference/);
  });

  it('keeps INVALID_WORKFLOW when the definition has other problems too', async () => {
    const { status, body } = await post('/v1/runs', { workflow: { id: 'deps', nodes: [node('python', ['-e .']), node('python', [])] } });
    expect(status).toBe(400);
    expect(body.error.code).toBe('INVALID_WORKFLOW');
    expect(body.error.message).toMatch(/duplicate node id/);
    expect(body.error.message).toMatch(/"-e \." is an installer option/);
  });

  it('refuses a package on the operator deny list even when the tenant allows it', async () => {
    const { status, body } = await run('typescript', ['left-pad@1.3.0']);
    expect(status).toBe(400);
    expect(body.error.code).toBe('INVALID_DEPENDENCY');
    expect(body.error.message).toMatch(/"left-pad@1\.3\.0" is refused by the operator deny list \(entry "\*:left-pad"\)/);
  });

  it('refuses a package off the tenant allow list, and only for that tenant', async () => {
    const acme = await run('python', ['requests>=2']);
    expect(acme.status).toBe(400);
    expect(acme.body.error.code).toBe('INVALID_DEPENDENCY');
    expect(acme.body.error.message).toMatch(/"requests>=2" \(pypi:requests\) is not on the tenant "acme" allow list \("pypi:tabulate", "npm:dayjs", "npm:left-pad"\)/);

    const globex = await run('python', ['numpy>=1.26'], 'globex');
    expect(globex.status).toBe(202);
  });

  it("refuses a package on the tenant's deny list, and only for that tenant", async () => {
    const globex = await run('python', ['Requests'], 'globex');
    expect(globex.status).toBe(400);
    expect(globex.body.error.code).toBe('INVALID_DEPENDENCY');
    expect(globex.body.error.message).toMatch(/"Requests" is refused by the tenant "globex" deny list \(entry "pypi:requests"\)/);
  });

  it('accepts allowed packages and stores their canonical specs', async () => {
    const { status, body } = await run('python', [' Tabulate == 0.9.0 ']);
    expect(status).toBe(202);
    // What the worker's installer will be given: the exec job's dependencies (no worker takes it here).
    const exec = new Queue<ExecJob>(QUEUE_NAMES.exec, { connection: stack.redis, prefix: stack.bullPrefix(QUEUE_NAMES.exec) });
    try {
      let job = await exec.getJob(`${body.id}.step.1`);
      for (let i = 0; i < 100 && !job; i++) {
        await new Promise((r) => setTimeout(r, 100));
        job = await exec.getJob(`${body.id}.step.1`);
      }
      expect(job?.data.dependencies).toEqual(['tabulate==0.9.0']);
    } finally {
      await exec.close();
    }
  });

  it('fails a queue submission with a refused package without retrying it', async () => {
    const submitter = new QueueSubmitter(stack.redis, stack.prefix);
    const submissions = new Queue(QUEUE_NAMES.submissions, { connection: stack.redis, prefix: stack.bullPrefix(QUEUE_NAMES.submissions) });
    try {
      // submit() asks for 5 attempts; an invalid definition must fail on the first.
      const jobId = await submitter.submit({ tenantId: 'acme', workflow: { id: 'deps', nodes: [node('python', ['requests'])] }, inputs: {} });
      let state = '';
      for (let i = 0; i < 100 && state !== 'failed'; i++) {
        await new Promise((r) => setTimeout(r, 100));
        state = await submissions.getJobState(jobId);
      }
      const job = await submissions.getJob(jobId);
      expect(state).toBe('failed');
      expect(job!.attemptsMade).toBe(1);
      expect(job!.failedReason).toMatch(/^INVALID_DEPENDENCY: .*"requests" \(pypi:requests\) is not on the tenant "acme" allow list/s);
    } finally {
      await submissions.close();
      await submitter.close();
    }
  });
});
