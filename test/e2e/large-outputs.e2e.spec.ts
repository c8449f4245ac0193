// Outputs of 5 MiB pass between nodes through the object store: node outputs, job args and run
// outputs above OUTPUT_INLINE_MAX_BYTES are offloaded, Redis keeps references only, and the API
// shows the full values. Runs once per storage backend: local disk always, S3 when `npm test`
// started its MinIO (PODFLOW_TEST_S3_ENDPOINT).
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { RunView } from '@podflow/client';
import { isTerminalRunPhase } from '@podflow/protocol';
import { redisNodes } from '@podflow/redis';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TENANT, execute, scanKeys, startStack, testS3, type Stack } from '../support/stack';

type Backend = 'local' | 's3';
const BACKENDS: Backend[] = process.env.PODFLOW_TEST_S3_ENDPOINT ? ['local', 's3'] : ['local'];

const MIB = 1024 * 1024;
/** No Redis key of the stack may hold more than this (the outputs are 5 MiB). */
const REDIS_KEY_LIMIT_BYTES = 1 * MIB;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** 81,920 hex digests of 64 characters: exactly 5 MiB, the same in Python and here. */
function expectedData(): string {
  const parts: string[] = [];
  for (let i = 0; i < 81_920; i++) parts.push(sha256(String(i)));
  return parts.join('');
}

const LARGE_WORKFLOW = {
  id: 'large-outputs',
  output: '{ "a_sha256": nodes.a.output.sha256, "c": nodes.c.output, "echo": nodes.a.output.data }',
  nodes: [
    {
      id: 'a',
      language: 'python',
      code: [
        'import hashlib',
        '',
        'def main(args):',
        '    data = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(81920))',
        '    return {"data": data, "length": len(data), "sha256": hashlib.sha256(data.encode()).hexdigest()}',
        '',
      ].join('\n'),
    },
    {
      id: 'b',
      language: 'typescript',
      code: [
        "import { createHash } from 'node:crypto';",
        '',
        'export function main(args: { nodes: { a: { output: { data: string } } } }) {',
        '  const data = args.nodes.a.output.data;',
        "  return { length: data.length, sha256: createHash('sha256').update(data).digest('hex') };",
        '}',
        '',
      ].join('\n'),
    },
    {
      id: 'c',
      language: 'python',
      inputs: { data: 'nodes.a.output.data', expected: 'nodes.a.output.sha256', seenByB: 'nodes.b.output.sha256' },
      code: [
        'import hashlib',
        '',
        'def main(data, expected, seenByB):',
        '    digest = hashlib.sha256(data.encode()).hexdigest()',
        '    return {"length": len(data), "sha256": digest, "matches": digest == expected == seenByB}',
        '',
      ].join('\n'),
    },
  ],
  edges: [
    { from: 'a', to: 'b' },
    { from: 'b', to: 'c', when: 'nodes.b.output.length > 1000000' },
  ],
};

const SMALL_WORKFLOW = {
  id: 'small-outputs',
  nodes: [
    { id: 'a', language: 'python', code: 'def main(args):\n    return {"rows": [1, 2, 3]}\n' },
    { id: 'b', language: 'javascript', inputs: { rows: 'nodes.a.output.rows' }, code: 'function main({ rows }) { return { total: rows.reduce((s, r) => s + r, 0) }; }' },
  ],
  edges: [{ from: 'a', to: 'b' }],
};

/** When a run is submitted and followed on its event stream to its end (polling would fetch 10 MiB each time). */
async function runToEnd(stack: Stack, workflow: unknown): Promise<RunView> {
  const { id } = await stack.client.submitRun({ workflow });
  for await (const event of stack.client.events(id)) {
    if (event.type === 'run' && isTerminalRunPhase(event.status)) break;
  }
  return stack.client.getRun(id);
}

/** Keys of every object stored for one run, relative to the store (`tenants/<t>/runs/<run>/...`). */
async function runObjects(stack: Stack, backend: Backend, runId: string): Promise<string[]> {
  const prefix = `tenants/${TENANT}/runs/${runId}/`;
  if (backend === 'local') {
    const dir = join(stack.storageDir, prefix);
    if (!existsSync(dir)) return [];
    return (readdirSync(dir, { recursive: true }) as string[]).filter((path) => statSync(join(dir, path)).isFile()).map((path) => prefix + path.split('\\').join('/'));
  }
  const s3 = testS3();
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
  try {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${stack.s3Prefix}/${prefix}`, ContinuationToken: token }));
      for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key.slice(`${stack.s3Prefix}/`.length));
      token = page.NextContinuationToken;
    } while (token);
    return keys;
  } finally {
    client.destroy();
  }
}

/** The largest keys under the stack's prefix by `MEMORY USAGE ... SAMPLES 0` (every element counted): run state, outboxes, event streams, BullMQ job hashes. */
async function largestRedisKeys(stack: Stack, count = 3): Promise<Array<{ key: string; bytes: number }>> {
  const sizes: Array<{ key: string; bytes: number }> = [];
  // Asked of the node that holds the key: a cluster client cannot route MEMORY USAGE by its key.
  for (const node of redisNodes(stack.redis)) {
    for (const key of await scanKeys(node, `${stack.prefix}:*`)) {
      const bytes = Number(await node.memory('USAGE', key, 'SAMPLES', 0));
      sizes.push({ key, bytes });
    }
  }
  return sizes.sort((a, b) => b.bytes - a.bytes).slice(0, count);
}

/**
 * What the coordinator keeps of run `runId` in Redis, as text: the values of its hashes and
 * strings (whatever the key layout; not its event stream, not the queues' job hashes).
 */
async function runStateText(stack: Stack, runId: string): Promise<string> {
  const parts: string[] = [];
  for (const key of await scanKeys(stack.redis, `${stack.prefix}:*${runId}*`)) {
    if (key.includes('{q:')) continue;
    const type = await stack.redis.type(key);
    if (type === 'hash') parts.push(...(await stack.redis.hvals(key)));
    if (type === 'string') parts.push((await stack.redis.get(key)) ?? '');
  }
  return parts.join('\n');
}

const PAYLOAD_KEY = /(\d+\.(output|args)|outputs)\.[0-9a-f]{64}\.json$/;

describe.each(BACKENDS)('large outputs (%s storage)', (backend) => {
  let stack: Stack;
  const data = expectedData();

  beforeAll(async () => {
    stack = await startStack({ workers: 1, ...(backend === 's3' ? { storage: 's3' as const } : {}) });
  });
  afterAll(() => stack?.stop());

  it('passes a 5 MiB output between nodes through the object store, and shows it in full', async () => {
    expect(data.length).toBe(5 * MIB);
    const run = await runToEnd(stack, LARGE_WORKFLOW);
    expect({ status: run.status, error: run.error }).toEqual({ status: 'succeeded', error: undefined });

    // Given the exact bytes A produced, B (args) and C (input bindings) saw them, and the API shows them.
    const digest = sha256(data);
    expect(run.nodes.a!.output!.sha256).toBe(digest);
    expect(run.nodes.a!.output!.data === data).toBe(true);
    expect(run.nodes.b!.output).toEqual({ length: data.length, sha256: digest });
    expect(run.nodes.c!.output).toEqual({ length: data.length, sha256: digest, matches: true });
    const outputs = run.outputs as { a_sha256: string; c: unknown; echo: string };
    expect(outputs.a_sha256).toBe(digest);
    expect(outputs.c).toEqual(run.nodes.c!.output);
    expect(outputs.echo === data).toBe(true);

    // Then the values went through the object store ...
    const objects = await runObjects(stack, backend, run.id);
    const payloads = objects.filter((key) => PAYLOAD_KEY.test(key)).map((key) => key.replace(/\.[0-9a-f]{64}\.json$/, '').replace(/^.*\/runs\/[^/]+\//, ''));
    expect(payloads.sort()).toEqual(['nodes/a/1.output', 'nodes/b/1.args', 'nodes/c/1.args', 'outputs']);

    // ... and Redis holds references only: no key near the 5 MiB.
    const largest = await largestRedisKeys(stack);
    expect(largest[0]!.bytes).toBeLessThan(REDIS_KEY_LIMIT_BYTES);
    const state = await runStateText(stack, run.id);
    expect(state).toMatch(/"outputRef":\{"key":"tenants\/acme\/runs\/[^"]+\/nodes\/a\/1\.output\.[0-9a-f]{64}\.json","size":\d+,"sha256":"[0-9a-f]{64}"\}/);
    expect(state).toMatch(/"outputsRef":/);
  });

  it('returns a large output from POST /v1/executions?wait=true', async () => {
    const result = await execute(stack, 'python', 'def main(args):\n    return {"blob": "q" * (2 * 1024 * 1024), "n": args["n"]}\n', { n: 7 });
    expect(result.status).toBe('succeeded');
    expect(result.output!.n).toBe(7);
    expect((result.output!.blob as string).length).toBe(2 * MIB);
    // The node's output, and the run's outputs (the leaf output) derived from it.
    const payloads = (await runObjects(stack, backend, result.id)).filter((key) => PAYLOAD_KEY.test(key)).sort();
    expect(payloads).toEqual([expect.stringMatching(/\/nodes\/main\/1\.output\.[0-9a-f]{64}\.json$/), expect.stringMatching(/\/outputs\.[0-9a-f]{64}\.json$/)]);
  });

  it('keeps a run whose outputs are small entirely inline', async () => {
    const run = await runToEnd(stack, SMALL_WORKFLOW);
    expect({ status: run.status, error: run.error }).toEqual({ status: 'succeeded', error: undefined });
    expect(run.nodes.b!.output).toEqual({ total: 6 });
    expect(run.outputs).toEqual({ b: { total: 6 } });
    expect(await runObjects(stack, backend, run.id)).toEqual([]);
    const state = await runStateText(stack, run.id);
    expect(state).toMatch(/"total":6/);
    expect(state).not.toMatch(/Ref"/);
  });
});
