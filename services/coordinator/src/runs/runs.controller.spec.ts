import { EventEmitter } from 'node:events';
import type { Request, Response } from 'express';
import type { CoordinatorConfig } from '../config';
import type { StoredEvent } from '../orchestration/run-store';
import type { RunEventsService } from '../streams/run-events.service';
import { StreamLimiter } from '../streams/stream-limiter';
import { MAX_SSE_BUFFERED_BYTES } from './client-connection';
import { ExecutionsController } from './executions.controller';
import type { WebhookDeliveries } from '../webhooks/webhook-deliveries';
import { RunsController } from './runs.controller';
import type { RunsService } from './runs.service';
import type { TenantDirectory } from '../tenancy/tenant-directory';

// The handlers' own bookkeeping (stream slots, backpressure) with the services around them
// replaced: these are the races a real client can only hit by timing (issue 10 review, findings 3
// and 6); the end-to-end suite covers the same through the API.

/** A promise the test settles when it chooses. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

/** The parts of an express response the handlers use; `write` answers what `accept` says. */
class FakeResponse extends EventEmitter {
  closed = false;
  destroyed = false;
  writableEnded = false;
  writableLength = 0;
  socket = { destroyed: false };
  frames: string[] = [];
  accept = true;
  statusCode = 0;
  status(code: number) {
    this.statusCode = code;
    return this;
  }
  set() {
    return this;
  }
  flushHeaders() {}
  json() {
    this.end();
  }
  write(frame: string): boolean {
    this.frames.push(frame);
    if (!this.accept) this.writableLength += frame.length;
    return this.accept;
  }
  end() {
    this.writableEnded = true;
  }
  destroy() {
    this.destroyed = true;
    this.clientLeaves();
  }
  /** The connection closes: what Node does when a client goes away. */
  clientLeaves() {
    this.closed = true;
    this.socket.destroyed = true;
    this.emit('close');
  }
}

const event = (n: number): StoredEvent => ({ id: `${n}-0`, event: { type: 'node', runId: 'r', nodeId: 'a', status: 'running', attempt: 1, at: n } });
const request = { header: () => undefined } as unknown as Request;

/** Events that follow() yields: the given ones, then it waits for the signal like a live stream. */
function fakeEvents(events: StoredEvent[], calls: { follow: number }): RunEventsService {
  return {
    startAfter: async () => '0-0',
    async *follow(_runId: string, signal: AbortSignal) {
      calls.follow++;
      yield* events;
      if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    },
    waitUntilFinished: async (_runId: string, _ms: number, signal?: AbortSignal) => {
      if (!signal?.aborted) await new Promise((resolve) => signal?.addEventListener('abort', resolve, { once: true }));
    },
  } as unknown as RunEventsService;
}

/** A directory under which no key is ever revoked. */
const noWatch = { watchAccess: () => () => undefined } as unknown as TenantDirectory;

const limiter = () => new StreamLimiter({ MAX_STREAMS_PER_KEY: 1, MAX_STREAMS: 10 } as CoordinatorConfig);

describe('RunsController.stream', () => {
  it('gives the slot back when the client leaves while the run is still being looked up', async () => {
    const lookup = deferred<unknown>();
    const calls = { follow: 0 };
    const limits = limiter();
    const controller = new RunsController({ get: () => lookup.promise } as unknown as RunsService, fakeEvents([], calls), limits, noWatch, {} as WebhookDeliveries);
    const response = new FakeResponse();
    const streaming = controller.stream('acme', 'key', 'r', request, response as unknown as Response);
    response.clientLeaves();
    lookup.resolve({});
    await streaming;
    expect(calls.follow).toBe(0);
    expect(() => limits.acquire('key', 'event stream')).not.toThrow();
  });

  it('waits for drain before the next frame, and cuts off a client that lets too much pile up', async () => {
    const calls = { follow: 0 };
    const limits = limiter();
    const controller = new RunsController({ get: async () => ({}) } as unknown as RunsService, fakeEvents([event(1), event(2), event(3)], calls), limits, noWatch, {} as WebhookDeliveries);
    const response = new FakeResponse();
    response.accept = false;
    const streaming = controller.stream('acme', 'key', 'r', request, response as unknown as Response);
    await settle();
    expect(response.frames).toHaveLength(1);
    response.accept = true;
    response.writableLength = 0;
    response.emit('drain');
    await settle();
    expect(response.frames.map((frame) => /^id: (.+)$/m.exec(frame)?.[1])).toEqual(['1-0', '2-0', '3-0']);
    response.clientLeaves();
    await streaming;

    const slow = new FakeResponse();
    slow.accept = false;
    slow.writableLength = MAX_SSE_BUFFERED_BYTES;
    await controller.stream('acme', 'key', 'r', request, slow as unknown as Response);
    expect({ frames: slow.frames.length, destroyed: slow.destroyed }).toEqual({ frames: 1, destroyed: true });
    expect(() => limits.acquire('key', 'event stream')).not.toThrow();
  });
});

describe('ExecutionsController.create with wait=true', () => {
  it('gives the slot back when the client leaves while the execution is being submitted', async () => {
    const submitted = deferred<{ id: string }>();
    const limits = limiter();
    const runs = { submit: () => submitted.promise, get: async () => ({ workflow: { nodes: [{ timeoutMs: 1000, retries: { max: 0 } }] } }) } as unknown as RunsService;
    const controller = new ExecutionsController(runs, fakeEvents([], { follow: 0 }), limits, noWatch);
    const response = new FakeResponse();
    const waiting = controller.create('acme', 'key', { language: 'python', code: 'def main(args): return {}' }, 'true', response as unknown as Response);
    response.clientLeaves();
    submitted.resolve({ id: 'r' });
    await waiting;
    expect(() => limits.acquire('key', 'waiting execution')).not.toThrow();
  });
});
