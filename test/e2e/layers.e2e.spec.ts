// Declared dependencies end to end on the embedded default (process driver): real coordinator and
// worker processes, real installs from PyPI and the npm registry into the worker's layer cache.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runToEnd, startStack, type Stack } from '../support/stack';

const workflow = {
  id: 'layers-e2e',
  nodes: [
    {
      id: 'schedule',
      type: 'code',
      language: 'python',
      dependencies: ['python-dateutil==2.9.0.post0', 'tabulate==0.9.0'],
      code: [
        'from datetime import date',
        'from dateutil.relativedelta import relativedelta',
        'from tabulate import tabulate',
        'def main(args):',
        '    due = [(date(2024, 1, 31) + relativedelta(months=i)).isoformat() for i in range(3)]',
        '    return {"due": due, "table": tabulate([[d] for d in due], headers=["due"], tablefmt="github")}',
        '',
      ].join('\n'),
    },
    {
      id: 'format',
      type: 'code',
      language: 'typescript',
      dependencies: ['dayjs@1.11.13'],
      inputs: { due: 'nodes.schedule.output.due' },
      code: "import dayjs from 'dayjs';\nexport function main({ due }: { due: string[] }) { return { labels: due.map((d) => dayjs(d).format('D MMM YYYY')) }; }\n",
    },
  ],
  edges: [{ from: 'schedule', to: 'format' }],
};

describe('dependency layers through the worker (process driver)', () => {
  let stack: Stack;
  let cacheDir: string;
  beforeAll(async () => {
    cacheDir = mkdtempSync(join(tmpdir(), 'podflow-e2e-layers-'));
    stack = await startStack({ workers: 1, workerEnv: { LAYER_CACHE_DIR: cacheDir, WORKER_CONCURRENCY: '4' } });
  });
  afterAll(async () => {
    await stack?.stop();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  it('installs each layer once, runs the nodes against it, and reuses it on the next run', async () => {
    const first = await runToEnd(stack, workflow, {});
    expect({ status: first.status, error: first.error }).toEqual({ status: 'succeeded', error: undefined });
    expect(first.nodes.schedule!.output).toEqual({
      due: ['2024-01-31', '2024-02-29', '2024-03-31'],
      table: '| due        |\n|------------|\n| 2024-01-31 |\n| 2024-02-29 |\n| 2024-03-31 |',
    });
    expect(first.nodes.format!.output).toEqual({ labels: ['31 Jan 2024', '29 Feb 2024', '31 Mar 2024'] });
    const published = () => readdirSync(cacheDir).filter((name) => /^[0-9a-f]{64}$/.test(name));
    expect(published()).toHaveLength(2);
    const buildsKey = `${stack.prefix}:layer:builds`;
    const afterFirst = await stack.redis.hgetall(buildsKey);
    expect(Object.values(afterFirst)).toEqual(['1', '1']);

    const second = await runToEnd(stack, workflow, {});
    expect(second.status).toBe('succeeded');
    expect(second.nodes.format!.output).toEqual(first.nodes.format!.output);
    expect(await stack.redis.hgetall(buildsKey)).toEqual(afterFirst);
    expect(published()).toHaveLength(2);
  });

  it('a package that does not exist fails the node with DEPENDENCY_INSTALL_FAILED and the installer\'s message, routed to its error branch', async () => {
    const run = await runToEnd(
      stack,
      {
        id: 'layers-e2e-missing',
        nodes: [
          { id: 'needs', type: 'code', language: 'python', dependencies: ['podflow-surely-missing-package==1.0'], code: 'def main(args): return {}' },
          { id: 'fallback', type: 'code', language: 'python', code: 'def main(args): return {"code": args["error"]["code"], "message": args["error"]["message"]}' },
        ],
        edges: [{ from: 'needs', to: 'fallback', on: 'failure' }],
      },
      {},
    );
    expect(run.status).toBe('succeeded');
    expect(run.nodes.needs).toMatchObject({ status: 'failed', error: { code: 'DEPENDENCY_INSTALL_FAILED' } });
    expect(run.nodes.fallback!.output).toMatchObject({ code: 'DEPENDENCY_INSTALL_FAILED' });
    expect((run.nodes.fallback!.output as { message: string }).message).toMatch(/No matching distribution found for podflow-surely-missing-package==1.0/);
  });
});
