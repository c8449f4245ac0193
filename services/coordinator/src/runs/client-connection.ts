import type { ServerResponse } from 'node:http';

/**
 * Most bytes an event stream may have waiting for its client beyond what the socket takes. Each
 * write waits for `drain`, so only one frame (events are bounded: errors are truncated) can be
 * over the high-water mark; a client past this is cut off rather than buffered for.
 */
export const MAX_SSE_BUFFERED_BYTES = 1024 * 1024;

/**
 * An abort signal for "the client went away", registered before the handler's first await: a
 * `close` that fires during that await would otherwise go unseen, and the request would keep its
 * stream slot until the run ends. A request whose connection closed before the handler ran at
 * all (during guards or body parsing) starts aborted. The response side is what tells: a request
 * is `destroyed` as soon as its body has been read, client present or not.
 */
export function clientGone(response: ServerResponse): AbortSignal {
  const gone = new AbortController();
  response.on('close', () => gone.abort());
  if (response.closed || response.destroyed || response.socket?.destroyed === true) gone.abort();
  return gone.signal;
}

/**
 * Writes one SSE frame and resolves when the client may take more: `true`, or `false` when the
 * client left or was cut off (more than MAX_SSE_BUFFERED_BYTES waiting for it). Honouring
 * `write()`'s answer keeps a client that does not read from growing the coordinator's memory.
 */
export async function writeFrame(response: ServerResponse, frame: string): Promise<boolean> {
  if (response.destroyed || response.writableEnded) return false;
  if (response.write(frame)) return true;
  if (response.writableLength > MAX_SSE_BUFFERED_BYTES) {
    response.destroy();
    return false;
  }
  return new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => {
      response.off('drain', onDrain);
      response.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    response.on('drain', onDrain);
    response.on('close', onClose);
  });
}
