import { QUEUE_NAMES, type ExecJob } from '@podflow/protocol';
import { Queue } from 'bullmq';
import { execute, freePort, startStack, type Stack } from '../support/stack';
import { expectHealthy } from './support/api';

// Issue 10, item 4: a file name the store cannot hold used to make the upload throw after the code
// had run; BullMQ then ran the code three times and no result ever came, so the run hung until
// RUN_TIMEOUT. Now every execution ends with exactly one result: a name that cannot be stored is
// OUTPUT_INVALID naming it (README "Files"), a store that keeps failing is SANDBOX_LOST, and a job
// BullMQ gives up on is still reported. "Ran once" is read from the exec job BullMQ kept: how many
// times a worker took it (attemptsStarted), and that the coordinator enqueued no further attempt.

jest.setTimeout(180_000);

/** `details` of a node error (the client's NodeView leaves it untyped). */
const detailsOf = (error: unknown): Record<string, unknown> | undefined => (error as { details?: Record<string, unknown> } | undefined)?.details;

const LANGUAGES = ['python', 'javascript'] as const;
type Language = (typeof LANGUAGES)[number];

/** Code that writes each name (a string, or bytes that are not UTF-8) and returns how many. */
function writer(language: Language, names: string[], rawNames: number[][] = []): string {
  if (language === 'python') {
    return [
      'def main(args):',
      `    for name in ${JSON.stringify(names)} + [bytes(b) for b in ${JSON.stringify(rawNames)}]:`,
      '        with open(name, "w") as f:',
      '            f.write("written")',
      `    return {"wrote": ${names.length + rawNames.length}}`,
    ].join('\n');
  }
  return [
    "const fs = require('node:fs');",
    'function main() {',
    `  for (const name of [...${JSON.stringify(names)}, ...${JSON.stringify(rawNames)}.map((b) => Buffer.from(b))]) fs.writeFileSync(name, 'written');`,
    `  return { wrote: ${names.length + rawNames.length} };`,
    '}',
  ].join('\n');
}

/** The exec jobs BullMQ kept for an ad-hoc execution (node `main`), attempt by attempt. */
async function execJobs(stack: Stack, runId: string): Promise<Array<{ attempt: number; state: string; attemptsStarted: number; attemptsMade: number }>> {
  const queue = new Queue<ExecJob>(QUEUE_NAMES.exec, { connection: stack.redis, prefix: stack.bullPrefix(QUEUE_NAMES.exec) });
  try {
    // A worker reports the result before it completes the BullMQ job: the run can be finished
    // while its job is still active for a moment. Read once no job is active (at most 5 s).
    for (let waited = 0; ; waited += 50) {
      const jobs = [];
      for (let attempt = 1; attempt <= 5; attempt++) {
        const job = await queue.getJob(`${runId}.main.${attempt}`);
        if (!job) break;
        jobs.push({ attempt, state: await job.getState(), attemptsStarted: job.attemptsStarted, attemptsMade: job.attemptsMade });
      }
      if (waited >= 5_000 || jobs.every((job) => job.state !== 'active')) return jobs;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await queue.close();
  }
}

describe('file names the store cannot hold', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 1 });
  });
  afterAll(() => stack?.stop());

  describe.each(LANGUAGES)('%s', (language) => {
    it('fail the node once with OUTPUT_INVALID naming each file, and the code ran once', async () => {
      const code = writer(language, ['..\\evil.txt', 'line\nbreak.txt', 'valid.txt'], [[98, 97, 100, 255, 46, 116, 120, 116]]);
      const result = await execute(stack, language, code);
      expect({ status: result.status, code: result.error?.code, attempts: result.attempts, files: result.files }).toEqual({
        status: 'failed',
        code: 'OUTPUT_INVALID',
        attempts: 1,
        files: undefined,
      });
      const named = (detailsOf(result.error)?.files as Array<{ path: string; reason: string }>).map((file) => [file.path, file.reason]).sort();
      expect(named).toEqual([
        ['..\\evil.txt', 'the name contains a backslash (\\), a path separator on Windows'],
        ['bad\uFFFD.txt', 'the name is not valid UTF-8'],
        ['line\nbreak.txt', 'the name contains the control character U+000A'],
      ]);
      expect(result.error?.message).toMatch(/^3 file\(s\) written under \/home\/user cannot be stored: .*Rename them or delete them before main returns/);
      expect(await execJobs(stack, result.id)).toEqual([{ attempt: 1, state: 'completed', attemptsStarted: 1, attemptsMade: 1 }]);
      await expectHealthy(stack);
    });

    it('store a 250-character name beside a plain one, both downloadable, the code run once', async () => {
      const long = `${'n'.repeat(246)}.txt`;
      const result = await execute(stack, language, writer(language, [long, 'valid.txt']));
      expect({ status: result.status, error: result.error, output: result.output, attempts: result.attempts }).toEqual({
        status: 'succeeded',
        error: undefined,
        output: { wrote: 2 },
        attempts: 1,
      });
      const elements = result.files?.elements ?? [];
      expect(elements.map((element) => element.path).sort()).toEqual([long, 'valid.txt'].sort());
      for (const element of elements) {
        const download = await fetch(element.download_url);
        expect({ path: element.path, status: download.status, body: await download.text() }).toEqual({ path: element.path, status: 200, body: 'written' });
        expect(download.headers.get('content-disposition')).toMatch(/^attachment; filename="/);
      }
      expect(await execJobs(stack, result.id)).toEqual([{ attempt: 1, state: 'completed', attemptsStarted: 1, attemptsMade: 1 }]);
      await expectHealthy(stack);
    });
  });
});

describe('files served from the coordinator (local disk)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 1 });
  });
  afterAll(() => stack?.stop());

  it('are downloads, never pages of its origin: an HTML or SVG file a node wrote cannot run its script there (red-team finding)', async () => {
    const code = [
      'def main(args):',
      '    open("x.html", "w").write("<script>alert(document.domain)</script>")',
      '    open("y.svg", "w").write("<svg xmlns=\\"http://www.w3.org/2000/svg\\"><script>alert(1)</script></svg>")',
      '    return {}',
    ].join('\n');
    const result = await execute(stack, 'python', code);
    expect(result.status).toBe('succeeded');
    const served = [];
    for (const element of result.files?.elements ?? []) {
      const download = await fetch(element.download_url);
      served.push({
        path: element.path,
        type: download.headers.get('content-type'),
        disposition: download.headers.get('content-disposition'),
        nosniff: download.headers.get('x-content-type-options'),
        csp: download.headers.get('content-security-policy'),
      });
    }
    expect(served).toEqual([
      { path: 'x.html', type: 'text/html; charset=utf-8', disposition: `attachment; filename="x.html"; filename*=UTF-8''x.html`, nosniff: 'nosniff', csp: "sandbox; default-src 'none'" },
      { path: 'y.svg', type: 'image/svg+xml', disposition: `attachment; filename="y.svg"; filename*=UTF-8''y.svg`, nosniff: 'nosniff', csp: "sandbox; default-src 'none'" },
    ]);
  });
});

describe('a store that fails for the workers', () => {
  // The coordinator stores job args in the test MinIO; the workers' S3 endpoint is a closed port,
  // so every read and write of theirs fails as an unreachable S3 does.
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      workers: 1,
      storage: 's3',
      env: { OUTPUT_INLINE_MAX_BYTES: '256' },
      workerEnv: { S3_ENDPOINT: `http://127.0.0.1:${await freePort()}` },
    });
  });
  afterAll(() => stack?.stop());

  it('after the code ran: SANDBOX_LOST for each attempt, each execution taken and run once', async () => {
    const result = await execute(stack, 'python', writer('python', ['report.txt']));
    expect({ status: result.status, code: result.error?.code, stage: detailsOf(result.error)?.stage, attempts: result.attempts }).toEqual({
      status: 'failed',
      code: 'SANDBOX_LOST',
      stage: 'store',
      attempts: 3,
    });
    expect(result.error?.message).toMatch(/ran, but its files or output could not be stored \(4 tries\): .*cannot reach bucket/);
    // Three attempts by the coordinator (SANDBOX_LOST is the platform's fault), none re-run by BullMQ.
    expect(await execJobs(stack, result.id)).toEqual([1, 2, 3].map((attempt) => ({ attempt, state: 'completed', attemptsStarted: 1, attemptsMade: 1 })));
    await expectHealthy(stack);
  });

  it('before the code could run: the jobs BullMQ gave up on are still reported, and the run ends', async () => {
    // Args above OUTPUT_INLINE_MAX_BYTES travel as a reference the workers cannot read.
    const result = await execute(stack, 'python', 'def main(args):\n    return {"n": len(args["blob"])}', { blob: 'x'.repeat(4096) });
    expect({ status: result.status, code: result.error?.code, attempts: result.attempts }).toEqual({ status: 'failed', code: 'SANDBOX_LOST', attempts: 3 });
    expect(result.error?.message).toMatch(/^the queue gave up on execution .* after 3 start\(s\) and 3 failed attempt\(s\): reading ".*\.args\..*" failed: cannot reach bucket/);
    expect(await execJobs(stack, result.id)).toEqual([1, 2, 3].map((attempt) => ({ attempt, state: 'failed', attemptsStarted: 3, attemptsMade: 3 })));
    await expectHealthy(stack);
  });
});
