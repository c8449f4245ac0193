import { spawnSync } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { API_KEY, ROOT, runToEnd, startStack, type Stack } from '../support/stack';

interface ExampleCase {
  name: string;
  file: string;
  inputs: Record<string, unknown>;
  /** Checks the run's outputs; the same check serves the HTTP API and the CLI. */
  check(outputs: Record<string, unknown>, stack: Stack): Promise<void> | void;
}

const hmacOf = (secret: string, body: string) => createHmac('sha256', secret).update(['POST', '/webhooks/orders', '1700000000', body].join('\n')).digest('hex');

const CASES: ExampleCase[] = [
  {
    name: 'LLM output cleanup, JSON in code fences',
    file: 'llm-json-cleanup.yaml',
    inputs: { text: 'Sure! Here you go:\n```json\n{"name": " Ada ", "age": 36}\n```\nAnything else?' },
    check: (o) => expect(o).toEqual({ typed: { person: { name: 'Ada', age: 36 }, method: 'json', complete: true } }),
  },
  {
    name: 'LLM output cleanup, regex fallback',
    file: 'llm-json-cleanup.yaml',
    inputs: { text: 'Name: Bob\nAge: 41\n' },
    check: (o) => expect(o).toEqual({ typed: { person: { name: 'Bob', age: 41 }, method: 'regex', complete: true } }),
  },
  {
    name: 'HMAC request signature (JavaScript signs, Python verifies)',
    file: 'hmac-signature.yaml',
    inputs: { secret: 's3cr3t', body: { event: 'paid' } },
    check: (o) => {
      const signature = hmacOf('s3cr3t', '{"event":"paid"}');
      expect(o).toEqual({ signature, header: `t=1700000000,v1=${signature}`, verified: true });
    },
  },
  {
    name: 'dedupe and normalise a list (TypeScript), batch it (Python)',
    file: 'dedupe-normalize.yaml',
    inputs: { emails: [' Ada@Example.com', 'ada@example.com', '', 'bob@example.com ', 'carol@example.com'], batchSize: 2 },
    check: (o) =>
      expect(o).toEqual({
        unique: ['ada@example.com', 'bob@example.com', 'carol@example.com'],
        removed: 2,
        batches: [['ada@example.com', 'bob@example.com'], ['carol@example.com']],
      }),
  },
  {
    name: 'write a CSV and return its download URL',
    file: 'csv-report.yaml',
    inputs: { orders: [{ sku: 'A-1', qty: 2, price: 9.5 }, { sku: 'B-7', qty: 1, price: 30 }] },
    check: async (o) => {
      expect(o).toMatchObject({ rows: 2, total: 49, file: 'orders.csv' });
      const response = await fetch(String(o.url));
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/text\/csv/);
      const lines = (await response.text()).trim().split(/\r?\n/);
      expect(lines).toEqual(['sku,qty,price,amount', 'A-1,2,9.5,19.0', 'B-7,1,30,30']);
    },
  },
  {
    name: 'a node that raises, routed to its error branch',
    file: 'error-branch.yaml',
    inputs: { amount: -5 },
    check: (o) =>
      expect(o).toEqual({ report_failure: { reported: true, node: 'charge', code: 'CODE_EXECUTION_FAILED', message: 'amount must be positive, got -5' } }),
  },
  {
    name: 'the same workflow without a failure takes the success edge',
    file: 'error-branch.yaml',
    inputs: { amount: 5 },
    check: (o) => expect(o).toEqual({ receipt: { receipt: 'charged 5' } }),
  },
];

describe('examples', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 1, workerEnv: { WORKER_CONCURRENCY: '4' } });
  });
  afterAll(() => stack?.stop());

  describe.each(CASES)('$name', ({ file, inputs, check }) => {
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
