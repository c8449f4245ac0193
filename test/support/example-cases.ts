// The example workflows of examples/ with their inputs and what their outputs must be; shared by
// the end-to-end suites of every sandbox driver, so the examples pass unchanged on each.
import { createHmac } from 'node:crypto';
import type { Stack } from './stack';

export interface ExampleCase {
  name: string;
  file: string;
  inputs: Record<string, unknown>;
  /** Checks the run's outputs; the same check serves the HTTP API and the CLI. */
  check(outputs: Record<string, unknown>, stack: Stack): Promise<void> | void;
}

const hmacOf = (secret: string, body: string) => createHmac('sha256', secret).update(['POST', '/webhooks/orders', '1700000000', body].join('\n')).digest('hex');

export const EXAMPLE_CASES: ExampleCase[] = [
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
