import { KubeConfig } from '@kubernetes/client-node';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readPodLogBytes } from './streams';

// A real HTTP server standing in for the API server's log endpoint: what is checked is how much
// of a log the worker asks for and reads (the code writes the log), not Kubernetes itself.
let server: Server;
let config: KubeConfig;
const asked: URL[] = [];
let served = 0;
/** The log of pod-whole; every other pod's is LONG_LOG_BYTES, far more than loopback buffers hold in flight. */
const LOG_BYTES = 1024 * 1024;
const LONG_LOG_BYTES = 64 * 1024 * 1024;

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://localhost');
    asked.push(url);
    res.writeHead(200, { 'content-type': 'text/plain' });
    // Ignores limitBytes, as an API server that does not honour it would: the worker stops by itself.
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const size = url.pathname.includes('/pod-whole/') ? LOG_BYTES : LONG_LOG_BYTES;
    let sent = 0;
    const more = () => {
      while (sent < size) {
        sent += chunk.length;
        served = sent;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      res.end();
    };
    more();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('readPodLogBytes', () => {
  it('reads at most maxBytes of a log, asks the API for no more, and says when there was more', async () => {
    const log = await readPodLogBytes(config, 'sandboxes', 'pod-1', 'runner', 100_000);
    expect({ bytes: log.bytes.length, cut: log.cut }).toEqual({ bytes: 100_000, cut: true });
    expect(asked.at(-1)!.pathname).toBe('/api/v1/namespaces/sandboxes/pods/pod-1/log');
    expect(Object.fromEntries(asked.at(-1)!.searchParams)).toEqual({ container: 'runner', limitBytes: '100001' });
    // It stopped reading: the server did not get to send the whole log.
    expect(served).toBeLessThan(LONG_LOG_BYTES);
  });

  it('reads a log within maxBytes whole', async () => {
    const log = await readPodLogBytes(config, 'sandboxes', 'pod-whole', 'runner', LOG_BYTES);
    expect({ bytes: log.bytes.length, cut: log.cut }).toEqual({ bytes: LOG_BYTES, cut: false });
  });
});
