import { PodflowError } from '@podflow/protocol';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { AuthenticatedRequest } from './auth.guard';
import { closeLingering, type LingerLimits } from './lingering-close';
import { authenticateBeforeBody } from './request-body';

// Real sockets on loopback: what matters here is what the kernel and node:http do at close.

const KiB = 1024;
const MiB = 1024 * KiB;

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

interface Server {
  port: number;
  /** `METHOD url` of every request the server processed. */
  requests: string[];
  /** Resolves once the server side of the first connection that brought a request is closed. */
  closed: Promise<void>;
  close(): Promise<void>;
}

async function serve(handle: Handler): Promise<Server> {
  const requests: string[] = [];
  let first: (socket: Socket) => void;
  const connection = new Promise<Socket>((resolve) => (first = resolve));
  const server = createServer((request, response) => {
    requests.push(`${request.method} ${request.url}`);
    first(request.socket);
    handle(request, response);
  });
  const closed = connection.then((socket) => new Promise<void>((resolve) => socket.on('close', () => resolve())));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    closed,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Refuses every request with a 401 and `Connection: close`, its body unread (as authenticateBeforeBody does). */
const refuse =
  (limits?: LingerLimits): Handler =>
  (request, response) => {
    response.setHeader('Connection', 'close');
    closeLingering(request, limits);
    response.writeHead(401, { 'content-type': 'text/plain' }).end('no key');
  };

interface Client {
  socket: Socket;
  /** Everything received up to the server's FIN. */
  answer: Promise<string>;
  /** The first socket error (EPIPE, ECONNRESET), if any. */
  error(): string | undefined;
  /** Writes `bytes` bytes of the body; resolves false if the connection failed meanwhile. */
  write(bytes: number | string): Promise<boolean>;
}

/**
 * A client on a raw socket that keeps its write side open after the server's FIN (allowHalfOpen),
 * like an HTTP client still uploading: sends the head of `POST path` announcing `length` bytes.
 */
async function upload(port: number, path: string, length: number, headers: Record<string, string> = {}): Promise<Client> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(socket, 'connect');
  let error: string | undefined;
  socket.on('error', (e: NodeJS.ErrnoException) => (error ??= e.code ?? e.message));
  const received: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  const answer = new Promise<string>((resolve) => socket.once('end', () => resolve(Buffer.concat(received).toString())));
  const head = [`POST ${path} HTTP/1.1`, 'Host: test', `Content-Length: ${length}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  socket.write(`${head.join('\r\n')}\r\n\r\n`);
  return {
    socket,
    answer,
    error: () => error,
    write: (bytes) =>
      new Promise((resolve) => {
        if (socket.destroyed) return resolve(false);
        socket.write(typeof bytes === 'string' ? bytes : Buffer.alloc(bytes, 0x31), (e) => resolve(!e));
      }),
  };
}

describe('closeLingering', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('sends the 401 of authenticateBeforeBody and a FIN, then reads on, so a client still uploading is never reset', async () => {
    // A directory that knows no key, as a coordinator's would for a wrong one.
    const directory = {
      authenticate: async () => Promise.reject(new PodflowError('UNAUTHENTICATED', 'unknown API key')),
      authenticateAdmin: async () => Promise.reject(new PodflowError('UNAUTHENTICATED', 'unknown admin key')),
    };
    server = await serve((request, response) =>
      authenticateBeforeBody(directory)(request as AuthenticatedRequest, response, (error) => {
        response.writeHead(error instanceof PodflowError ? 401 : 500).end('refused');
      }),
    );
    const client = await upload(server.port, '/v1/runs', 64 * MiB, { authorization: 'Bearer wrong-key' });
    await client.write(MiB);
    const answer = await client.answer;
    expect(answer).toMatch(/^HTTP\/1\.1 401 .*\r\nConnection: close\r\n/s);
    // node:http used to close(2) here with the body unread: the kernel reset the connection, and
    // these writes failed (EPIPE, ECONNRESET), taking the unread answer with them.
    expect(await client.write(2 * MiB)).toBe(true);
    client.socket.end();
    await once(client.socket, 'close');
    expect({ error: client.error(), requests: server.requests }).toEqual({ error: undefined, requests: ['POST /v1/runs'] });
  });

  it('resets the connection once more than maxBytes arrive after the answer', async () => {
    server = await serve(refuse({ maxBytes: MiB, maxMs: 60_000 }));
    const client = await upload(server.port, '/', 64 * MiB);
    await client.write(64 * KiB);
    await client.answer;
    let sent = 0;
    while (sent < 32 * MiB && (await client.write(256 * KiB))) sent += 256 * KiB;
    await server.closed;
    expect({ error: client.error(), sentLessThan32MiB: sent < 32 * MiB }).toEqual({ error: expect.stringMatching(/^(EPIPE|ECONNRESET)$/), sentLessThan32MiB: true });
  });

  it('closes the connection after maxMs when the client neither sends nor closes', async () => {
    server = await serve(refuse({ maxBytes: MiB, maxMs: 50 }));
    const client = await upload(server.port, '/', 64 * MiB);
    await client.write(64 * KiB);
    await client.answer;
    await server.closed;
    expect(client.socket.writableEnded).toBe(false);
    client.socket.destroy();
  });

  it('never parses what follows the refused request: a request sent after it is not processed', async () => {
    server = await serve(refuse());
    const client = await upload(server.port, '/first', 1000);
    await client.write(100);
    await client.answer;
    const sent = await client.write(`${'1'.repeat(900)}GET /second HTTP/1.1\r\nHost: test\r\n\r\n`);
    client.socket.end();
    await Promise.all([server.closed, once(client.socket, 'close')]);
    expect({ sent, error: client.error(), requests: server.requests }).toEqual({ sent: true, error: undefined, requests: ['POST /first'] });
  });
});
