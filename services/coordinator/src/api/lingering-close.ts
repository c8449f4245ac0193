import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/** How much a closing connection still reads, and for how long, after its last response. */
export interface LingerLimits {
  /** Bytes discarded at most once the response is written; past them the connection is reset. */
  maxBytes: number;
  /** Milliseconds at most once the response is written; past them the connection is reset. */
  maxMs: number;
}

/**
 * 8 MiB or 2 s, whichever comes first. What a client still uploading sends before it reads the
 * answer is what it had in flight: its socket send buffer (Linux: 4 MiB at most by default,
 * net.ipv4.tcp_wmem), what node:http left unread in ours, and its current write; a few MiB.
 * It is discarded as it comes (64 KiB reads), never buffered, and a client without an API key
 * cannot hold the connection any longer.
 */
export const LINGER_LIMITS: LingerLimits = { maxBytes: 8 * 1024 * 1024, maxMs: 2_000 };

/**
 * Closes the connection of `request` in stages once its `Connection: close` response is written
 * (RFC 9112 section 9.6; nginx's lingering_close): FIN after the response, then whatever the
 * client still sends is read and thrown away, within `limits`, until the client closes too.
 *
 * Why: node:http closes such a connection (socket.destroySoon) as soon as the response is
 * flushed. When the request body was never read (a 401 before the body), the unread bytes make
 * the kernel answer close() with a TCP reset, and a client still writing its body then gets
 * EPIPE or ECONNRESET on its next write before it has read the answer waiting in its receive
 * buffer: it sees no answer at all. Reading on after the FIN means no reset while the client is
 * still sending, so it reads the answer and stops.
 *
 * Nothing read after the response reaches the HTTP parser: a request that follows on this
 * connection is never processed.
 */
export function closeLingering(request: IncomingMessage, limits: LingerLimits = LINGER_LIMITS): void {
  const socket = request.socket;
  // The one call node:http makes to end a connection after a `Connection: close` response
  // (resOnFinish in lib/_http_server.js); lingering-close.spec.ts fails if that ever changes.
  socket.destroySoon = () => linger(socket, limits);
}

function linger(socket: Socket, { maxBytes, maxMs }: LingerLimits): void {
  if (socket.destroyed) return;
  let discarded = 0;
  const close = (): void => {
    clearTimeout(deadline);
    socket.destroy();
  };
  const deadline = setTimeout(close, maxMs);
  deadline.unref();
  // A reset by the client is its way of closing: nothing to report.
  socket.on('error', close);
  socket.on('close', () => clearTimeout(deadline));
  // Detach the HTTP parser (node:http's 'data' and 'end' listeners): what follows is discarded,
  // not parsed, and its end is no parse error. Adding a 'data' listener also stops the parser
  // consuming the socket natively.
  socket.removeAllListeners('data');
  socket.removeAllListeners('end');
  socket.on('end', close);
  socket.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > maxBytes) close();
  });
  socket.end();
  readOn(socket);
}

/**
 * Makes the socket read again in JavaScript. node:http pauses it while a body sits unread, and
 * its parser did the reading natively: the stream's own state still says a read is under way,
 * so resume() alone would start none. An empty push ends that read (the side effect the
 * Readable docs give for push('')), and the flowing stream starts a real one.
 */
function readOn(socket: Socket): void {
  socket.resume();
  socket.push(Buffer.alloc(0));
}
