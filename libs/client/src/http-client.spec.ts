import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PodflowClient } from './http-client';

// waitForRun against a real HTTP server that behaves like a coordinator in a rolling update:
// some polls get their connection closed without an answer.
describe('PodflowClient.waitForRun', () => {
  let server: Server;
  let url: string;
  let polls = 0;
  let answer: (poll: number) => { status: number; body: unknown } | 'close';

  beforeAll(async () => {
    server = createServer((request, response) => {
      polls += 1;
      const next = answer(polls);
      if (next === 'close') {
        request.socket.destroy();
        return;
      }
      response.writeHead(next.status, { 'content-type': 'application/json' }).end(JSON.stringify(next.body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));
  beforeEach(() => {
    polls = 0;
  });

  const run = (status: string) => ({ status: 200, body: { id: 'r1', status, nodes: {} } });

  it('rides over polls whose connection is closed without an answer', async () => {
    answer = (poll) => (poll === 1 ? run('running') : poll <= 3 ? 'close' : run('succeeded'));
    const view = await new PodflowClient({ url, apiKey: 'k' }).waitForRun('r1', 5, 10_000);
    expect({ status: view.status, polls }).toEqual({ status: 'succeeded', polls: 4 });
  });

  it('retries an UNAVAILABLE answer (503: the coordinator\'s Redis was slow; it says to retry)', async () => {
    const unavailable = { status: 503, body: { error: { code: 'UNAVAILABLE', message: 'cannot check the API key now: Redis did not answer (no answer within 2000 ms); retry in a few seconds' } } };
    answer = (poll) => (poll <= 2 ? unavailable : run('succeeded'));
    const view = await new PodflowClient({ url, apiKey: 'k' }).waitForRun('r1', 5, 10_000);
    expect({ status: view.status, polls }).toEqual({ status: 'succeeded', polls: 3 });
    // A proxy's own gateway error (not JSON) during a rolling update counts the same.
    answer = (poll) => (poll === 4 ? { status: 502, body: '<html>Bad Gateway</html>' } : poll === 5 ? { status: 504, body: 'upstream timed out' } : run('succeeded'));
    expect((await new PodflowClient({ url, apiKey: 'k' }).waitForRun('r1', 5, 10_000)).status).toBe('succeeded');
    expect(polls).toBe(6);
    answer = () => unavailable;
    await expect(new PodflowClient({ url, apiKey: 'k' }).waitForRun('r1', 20, 200)).rejects.toMatchObject({
      code: 'RUN_TIMEOUT',
      message: `run r1 did not finish within 200 ms (the last poll was answered: ${unavailable.body.error.message})`,
    });
  });

  it('does not retry an error answer: a 404 is the caller\'s to handle', async () => {
    answer = () => ({ status: 404, body: { error: { code: 'NOT_FOUND', message: 'run r1 not found' } } });
    await expect(new PodflowClient({ url, apiKey: 'k' }).waitForRun('r1', 5, 10_000)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(polls).toBe(1);
  });

  it('fails at once when the coordinator\'s name does not resolve (a configuration error, not a rollout)', async () => {
    const started = Date.now();
    await expect(new PodflowClient({ url: 'http://podflow-coordinator.invalid', apiKey: 'k' }).waitForRun('r1', 5, 10_000)).rejects.toMatchObject({ message: 'fetch failed' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('gives up at its deadline when the coordinator stays unreachable', async () => {
    answer = () => 'close';
    await expect(new PodflowClient({ url, apiKey: 'k' }).waitForRun('r1', 20, 200)).rejects.toMatchObject({ code: 'RUN_TIMEOUT', message: 'run r1 did not finish within 200 ms (the last poll could not reach the coordinator)' });
    expect(polls).toBeGreaterThan(1);
  });
});
