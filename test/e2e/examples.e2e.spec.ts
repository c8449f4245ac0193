import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { EXAMPLE_CASES } from '../support/example-cases';
import { API_KEY, ROOT, runToEnd, startStack, type Stack } from '../support/stack';

describe('examples', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 1, workerEnv: { WORKER_CONCURRENCY: '4' } });
  });
  afterAll(() => stack?.stop());

  describe.each(EXAMPLE_CASES)('$name', ({ file, inputs, check }) => {
    it('runs through the HTTP API', async () => {
      const definition = parse(readFileSync(join(ROOT, 'examples', file), 'utf8'));
      const run = await runToEnd(stack, definition, inputs);
      expect({ status: run.status, error: run.error }).toEqual({ status: 'succeeded', error: undefined });
      await check(run.outputs as Record<string, unknown>, stack);
    });

    it('runs through the CLI', async () => {
      const args = Object.entries(inputs).flatMap(([k, v]) => ['--input', `${k}=${JSON.stringify(v)}`]);
      const cli = spawnSync(process.execPath, [join(ROOT, 'libs/client/dist/cli.js'), 'run', join(ROOT, 'examples', file), ...args, '--watch', '--url', stack.url, '--api-key', API_KEY], {
        encoding: 'utf8',
        timeout: 90_000,
      });
      expect({ status: cli.status, stderr: cli.status === 0 ? '' : cli.stderr }).toEqual({ status: 0, stderr: '' });
      expect(cli.stderr).toMatch(/run\s+succeeded/);
      await check(JSON.parse(cli.stdout), stack);
    });
  });

  it('gives the files element everything DESIGN.md promises, with a matching sha256', async () => {
    const definition = parse(readFileSync(join(ROOT, 'examples', 'csv-report.yaml'), 'utf8'));
    const run = await runToEnd(stack, definition, { orders: [{ sku: 'Z', qty: 1, price: 1 }] });
    const element = run.nodes.report!.files!.elements[0]!;
    expect(element).toMatchObject({ name: 'orders.csv', path: 'orders.csv', content_type: 'text/csv' });
    const bytes = Buffer.from(await (await fetch(element.download_url)).arrayBuffer());
    expect(bytes.length).toBe(element.size);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(element.sha256);
    expect(Date.parse(element.expires_at)).toBeGreaterThan(Date.now());
    const tampered = element.download_url.replace(/signature=[0-9a-f]{4}/, 'signature=0000');
    expect((await fetch(tampered)).status).toBe(401);
    const resigned = await stack.client.request<{ elements: Array<{ download_url: string }> }>('POST', `/v1/runs/${run.id}/nodes/report/files/sign`, { ttlSeconds: 60 });
    expect((await fetch(resigned.elements[0]!.download_url)).status).toBe(200);
  });

  it('fails the CLI with the error code when a run fails', () => {
    const cli = spawnSync(process.execPath, [join(ROOT, 'libs/client/dist/cli.js'), 'exec', '--lang', 'python', '-', '--url', stack.url, '--api-key', API_KEY], {
      encoding: 'utf8',
      input: 'def main(args):\n    raise KeyError("missing")\n',
      timeout: 60_000,
    });
    expect(cli.status).toBe(1);
    expect(cli.stderr).toMatch(/CODE_EXECUTION_FAILED/);
    expect(cli.stderr).toMatch(/KeyError/);
  });

  it('runs one snippet with podflow exec', () => {
    const cli = spawnSync(process.execPath, [join(ROOT, 'libs/client/dist/cli.js'), 'exec', '--lang', 'typescript', '-', '--arg', 'n=20', '--url', stack.url, '--api-key', API_KEY], {
      encoding: 'utf8',
      input: 'export function main({ n }: { n: number }) { return { squares: Array.from({ length: 3 }, (_, i) => (n + i) ** 2) }; }\n',
      timeout: 60_000,
    });
    expect({ status: cli.status, stderr: cli.status === 0 ? '' : cli.stderr }).toEqual({ status: 0, stderr: '' });
    expect(JSON.parse(cli.stdout)).toEqual({ output: { squares: [400, 441, 484] } });
  });
});
