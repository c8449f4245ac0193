import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { WorkerMetrics } from './metrics';

export interface WorkerProbes {
  /** Whether the worker takes jobs: started, not stopping, Redis answering. */
  ready(): Promise<{ ready: boolean; reason?: string }>;
}

/**
 * The worker's own small HTTP server (WORKER_HTTP_PORT): `/healthz` (the process answers),
 * `/readyz` (it takes jobs; 503 with the reason otherwise) and `/metrics` (Prometheus text).
 * Nothing else, and never the API: the worker holds no tenant keys.
 */
export async function startWorkerHttp(port: number, host: string, probes: WorkerProbes, metrics: WorkerMetrics, logger: Logger): Promise<Server> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    const send = (status: number, type: string, body: string) => {
      response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
    };
    if (request.method !== 'GET') return send(405, 'application/json', JSON.stringify({ error: { code: 'METHOD_NOT_ALLOWED', message: 'the worker serves GET /healthz, /readyz and /metrics only' } }));
    if (path === '/healthz') return send(200, 'application/json', '{"status":"ok"}');
    if (path === '/readyz') {
      void probes.ready().then(
        (state) => send(state.ready ? 200 : 503, 'application/json', JSON.stringify(state.ready ? { status: 'ready' } : { status: 'not ready', reason: state.reason })),
        (error: unknown) => send(503, 'application/json', JSON.stringify({ status: 'not ready', reason: (error as Error).message })),
      );
      return;
    }
    if (path === '/metrics') {
      void metrics.registry.metrics().then(
        (text) => send(200, metrics.registry.contentType, text),
        (error: unknown) => send(500, 'text/plain', `metrics failed: ${(error as Error).message}`),
      );
      return;
    }
    send(404, 'application/json', JSON.stringify({ error: { code: 'NOT_FOUND', message: `no ${path} here: the worker serves /healthz, /readyz and /metrics` } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const hint = error.code === 'EADDRINUSE' ? `; set WORKER_HTTP_PORT to a free port (0: any free port)` : '';
      reject(new Error(`the worker's health and metrics server cannot listen on ${host}:${port}: ${error.message}${hint}`));
    });
    server.listen(port, host, () => resolve());
  });
  logger.info({ port: (server.address() as AddressInfo).port }, 'worker health and metrics listening');
  return server;
}
