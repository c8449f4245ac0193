import { connect } from 'node:net';
import { redisNodes } from '@podflow/redis';
import { API_KEY, startStack, type Stack } from '../support/stack';
import { OTHER_KEY, call, eventually, expectHealthy } from './support/api';

// Issue 10, item 7: event streams and waits share one Redis reader per coordinator, are capped per
// API key and in total (429 + Retry-After), and end when their client goes away; item 9's
// Last-Event-ID checks live here too, and the review's findings 2 and 3 (a client's id never
// becomes the shared reader's cursor; a client that leaves early gives its slot back).

const PER_KEY = 4;
const TOTAL = 6;
const sleeper = (seconds: number) => `import time\n\ndef main(args):\n    time.sleep(${seconds})\n    return {}\n`;

interface OpenStream {
  status: number;
  headers: Headers;
  /** Resolves with every `id:`/`data:` frame once the server ends the stream (or it is closed). */
  frames: Promise<Array<{ id: string; data: { type: string; status?: string; nodeId?: string } }>>;
  close(): void;
}

/** When a client opens `GET /v1/runs/:id/events` (headers sent, body read in the background). */
async function openStream(stack: Stack, runId: string, options: { key?: string; lastEventId?: string } = {}): Promise<OpenStream> {
  const controller = new AbortController();
  const headers: Record<string, string> = { authorization: `Bearer ${options.key ?? API_KEY}`, ...(options.lastEventId !== undefined ? { 'last-event-id': options.lastEventId } : {}) };
  const response = await fetch(`${stack.url}/v1/runs/${runId}/events`, { headers, signal: controller.signal });
  const frames = (async () => {
    const text = await response.text().catch(() => '');
    return text
      .split('\n\n')
      .filter((frame) => frame.includes('data: '))
      .map((frame) => ({ id: /^id: (.+)$/m.exec(frame)?.[1] ?? '', data: JSON.parse(/^data: (.+)$/m.exec(frame)?.[1] ?? '{}') }));
  })();
  return { status: response.status, headers: response.headers, frames, close: () => controller.abort() };
}

async function startRun(stack: Stack, key = API_KEY, seconds = 60): Promise<string> {
  const response = await call(stack, 'POST', '/v1/runs', { key, body: { workflow: { id: 'sleepy', nodes: [{ id: 'sleep', language: 'python', code: sleeper(seconds) }] } } });
  expect(response.status).toBe(202);
  return response.json.id as string;
}

/** Redis connections the stack's coordinator holds for run events (the hub names its one). */
async function eventReaders(stack: Stack): Promise<number> {
  // On every node of a cluster: the subscriber is on one of them (its name then has ioredis's prefix).
  const clients = await Promise.all(redisNodes(stack.redis).map(async (node) => String(await node.client('LIST'))));
  return clients.join('\n').split('\n').filter((line) => new RegExp(` name=(ioredis-cluster\\(subscriber\\):)?podflow-run-events:${stack.prefix} `).test(line)).length;
}

describe('event streams and waits (issue 10, items 7 and 9)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 1, workerEnv: { WORKER_CONCURRENCY: '4' }, env: { MAX_STREAMS_PER_KEY: String(PER_KEY), MAX_STREAMS: String(TOTAL) } });
  });
  afterAll(() => stack?.stop());
  afterEach(() => expectHealthy(stack));

  it('serves many streams through one Redis reader, each with every event once and in order, resumable by Last-Event-ID', async () => {
    const workflow = {
      id: 'chain',
      nodes: [
        { id: 'a', language: 'python', code: sleeper(2) },
        { id: 'b', language: 'python', code: 'def main(args):\n    return {}\n' },
      ],
      edges: [{ from: 'a', to: 'b' }],
    };
    const submitted = await call(stack, 'POST', '/v1/runs', { body: { workflow } });
    const runId = submitted.json.id as string;
    const streams = await Promise.all([openStream(stack, runId), openStream(stack, runId), openStream(stack, runId, { lastEventId: '$' }), openStream(stack, runId, { key: OTHER_KEY })]);
    expect(streams.map((s) => s.status)).toEqual([200, 200, 200, 404]);
    // The hub's one connection is named once it has connected (it connects with the first stream).
    expect(await eventually(async () => (await eventReaders(stack)) === 1, 'the hub\'s one reader connection')).toBe(true);
    const [first, second, latest] = await Promise.all(streams.slice(0, 3).map((s) => s.frames));
    // The whole history, once and in order, ending with the terminal run event.
    const all = (await (await openStream(stack, runId)).frames).map((f) => f.id);
    expect(first!.map((f) => f.id)).toEqual(all);
    expect(second!.map((f) => f.id)).toEqual(all);
    expect(new Set(all).size).toBe(all.length);
    expect(first!.at(-1)!.data).toMatchObject({ type: 'run', status: 'succeeded' });
    // `$`: only what came after it connected, still up to the end.
    expect(latest!.length).toBeLessThan(all.length);
    expect(latest!.map((f) => f.id)).toEqual(all.slice(all.length - latest!.length));
    // Resuming after the third event gives exactly the rest.
    const resumed = await (await openStream(stack, runId, { lastEventId: all[2] })).frames;
    expect(resumed.map((f) => f.id)).toEqual(all.slice(3));
  });

  it('ends a finished run\'s stream at once for Last-Event-ID $, and refuses a malformed Last-Event-ID with 400', async () => {
    const runId = await startRun(stack, API_KEY, 0);
    await eventually(async () => ['succeeded', 'failed'].includes((await call(stack, 'GET', `/v1/runs/${runId}`)).json.status), 'the run to finish');
    const latest = await openStream(stack, runId, { lastEventId: '$' });
    expect({ status: latest.status, frames: await latest.frames }).toEqual({ status: 200, frames: [] });
    for (const lastEventId of ['nope', '12', '1-2-3', '-1']) {
      const bad = await call(stack, 'GET', `/v1/runs/${runId}/events`, { headers: { 'last-event-id': lastEventId } });
      expect({ lastEventId, status: bad.status, code: bad.json?.error?.code }).toEqual({ lastEventId, status: 400, code: 'BAD_REQUEST' });
    }
  });

  it('refuses a Last-Event-ID beyond 64 bits or after the run\'s last event with 400, and the shared reader keeps serving the run', async () => {
    const runId = await startRun(stack, API_KEY, 2);
    // Parts above 2^64 - 1 made Redis refuse the whole shared XREAD (every stream of every tenant
    // stalled); a valid id in the future moved the shared cursor past every real event.
    for (const lastEventId of ['99999999999999999999-0', '18446744073709551616-0', '0-18446744073709551616', '18446744073709551615-0', `${Date.now() + 3_600_000}-0`]) {
      const bad = await call(stack, 'GET', `/v1/runs/${runId}/events`, { headers: { 'last-event-id': lastEventId } });
      expect({ lastEventId, status: bad.status, code: bad.json?.error?.code }).toEqual({ lastEventId, status: 400, code: 'BAD_REQUEST' });
    }
    const frames = await (await openStream(stack, runId)).frames;
    expect(frames.at(-1)!.data).toMatchObject({ type: 'run', status: 'succeeded' });
  });

  it('frees the slots of clients that leave before their stream or wait has started', async () => {
    const runId = await startRun(stack);
    const { hostname, port } = new URL(stack.url);
    const waitBody = JSON.stringify({ language: 'python', code: 'def main(args):\n    return {}\n' });
    const requests = [
      `GET /v1/runs/${runId}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\n\r\n`,
      `POST /v1/executions?wait=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(waitBody)}\r\n\r\n${waitBody}`,
    ];
    // Each client sends its request and is gone at once, while the handler is still awaiting Redis.
    for (let i = 0; i < PER_KEY * 3; i++) {
      await new Promise<void>((resolve) => {
        const socket = connect(Number(port), hostname, () => {
          socket.end(requests[i % 2]);
          socket.destroy();
          resolve();
        });
      });
    }
    const streams = await eventually(async () => {
      const opened = await Promise.all(Array.from({ length: PER_KEY }, () => openStream(stack, runId)));
      if (opened.every((stream) => stream.status === 200)) return opened;
      for (const stream of opened) stream.close();
      return undefined;
    }, `all ${PER_KEY} slots of the key to be free again`);
    for (const stream of streams) stream.close();
    await call(stack, 'POST', `/v1/runs/${runId}/cancel`);
    const executions = (await call(stack, 'GET', '/v1/runs?workflowId=execution&limit=200')).json.runs as Array<{ id: string }>;
    for (const execution of executions) await call(stack, 'POST', `/v1/runs/${execution.id}/cancel`);
  });

  it('caps streams and waits per API key and in total with 429 and Retry-After, and frees a slot when a client leaves', async () => {
    const runId = await startRun(stack);
    const mine = await Promise.all(Array.from({ length: PER_KEY }, () => openStream(stack, runId)));
    expect(mine.map((s) => s.status)).toEqual(Array(PER_KEY).fill(200));
    const refused = await call(stack, 'GET', `/v1/runs/${runId}/events`);
    expect({ status: refused.status, retryAfter: refused.headers.get('retry-after'), message: refused.json?.error?.message }).toEqual({
      status: 429,
      retryAfter: '5',
      message: expect.stringContaining(`MAX_STREAMS_PER_KEY=${PER_KEY}`),
    });
    // A wait is refused before any run is created for it.
    const before = (await call(stack, 'GET', '/v1/runs?limit=200')).json.runs.length;
    const wait = await call(stack, 'POST', '/v1/executions?wait=true', { body: { language: 'python', code: 'def main(args):\n    return {}\n' } });
    expect(wait.status).toBe(429);
    expect((await call(stack, 'GET', '/v1/runs?limit=200')).json.runs.length).toBe(before);

    const otherRun = await startRun(stack, OTHER_KEY);
    const theirs = await Promise.all(Array.from({ length: TOTAL - PER_KEY }, () => openStream(stack, otherRun, { key: OTHER_KEY })));
    expect(theirs.map((s) => s.status)).toEqual(Array(TOTAL - PER_KEY).fill(200));
    const full = await call(stack, 'GET', `/v1/runs/${otherRun}/events`, { key: OTHER_KEY });
    expect({ status: full.status, message: full.json?.error?.message }).toEqual({ status: 429, message: expect.stringContaining(`MAX_STREAMS=${TOTAL}`) });

    // One client leaves: its slot comes back.
    mine[0]!.close();
    const again = await eventually(async () => {
      const stream = await openStream(stack, runId);
      if (stream.status === 200) return stream;
      stream.close();
      return undefined;
    }, 'a slot to free up after a client disconnected');
    for (const stream of [...mine.slice(1), ...theirs, again]) stream.close();
    await call(stack, 'POST', `/v1/runs/${runId}/cancel`);
    await call(stack, 'POST', `/v1/runs/${otherRun}/cancel`, { key: OTHER_KEY });
    await eventually(async () => (await eventReaders(stack)) <= 1 && (await call(stack, 'GET', `/v1/runs/${runId}/events`, { headers: { 'last-event-id': '$' } })).status === 200, 'slots to be released');
  });

  it('stops waiting when the client of POST /v1/executions?wait=true goes away', async () => {
    const runId = await startRun(stack);
    // PER_KEY - 1 streams and one wait fill this key's slots.
    const streams = await Promise.all(Array.from({ length: PER_KEY - 1 }, () => openStream(stack, runId)));
    const gone = new AbortController();
    const waiting = call(stack, 'POST', '/v1/executions?wait=true', { body: { language: 'python', code: sleeper(60) }, signal: gone.signal }).catch((error: unknown) => error);
    const execution = await eventually(async () => (await call(stack, 'GET', '/v1/runs?workflowId=execution&status=running')).json.runs[0], 'the execution to start');
    expect((await call(stack, 'GET', `/v1/runs/${runId}/events`)).status).toBe(429);
    gone.abort();
    expect(await waiting).toMatchObject({ name: 'AbortError' });
    // The coordinator noticed: the wait's slot is free again.
    const freed = await eventually(async () => {
      const stream = await openStream(stack, runId);
      if (stream.status === 200) return stream;
      stream.close();
      return undefined;
    }, 'the abandoned wait to release its slot');
    for (const stream of [...streams, freed]) stream.close();
    await call(stack, 'POST', `/v1/runs/${execution.id}/cancel`);
    await call(stack, 'POST', `/v1/runs/${runId}/cancel`);
  });
});
