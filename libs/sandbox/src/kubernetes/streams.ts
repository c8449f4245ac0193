import type { KubeConfig } from '@kubernetes/client-node';
import { request } from 'node:https';
import { Writable } from 'node:stream';

/** Collects a stream's bytes up to `capBytes`; beyond that it counts but keeps nothing more. */
export class ByteCollector extends Writable {
  private readonly chunks: Buffer[] = [];
  size = 0;
  overflowed = false;

  constructor(private readonly capBytes: number) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.size + chunk.length > this.capBytes) this.overflowed = true;
    else this.chunks.push(chunk);
    this.size += chunk.length;
    done();
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** The last `maxBytes` as text, for error messages. */
  tail(maxBytes: number): string {
    const all = this.bytes();
    return all.subarray(Math.max(0, all.length - maxBytes)).toString('utf8');
  }
}

/** Inactivity bound of one log read. */
const LOG_READ_TIMEOUT_MS = 30_000;

/** A container's log, or its first `maxBytes` bytes with `cut` set when there was more. */
export interface PodLog {
  bytes: Buffer;
  cut: boolean;
}

/**
 * A container's log as raw bytes, at most `maxBytes` of it (the code writes the log: unbounded,
 * it would be read whole into the worker's memory). The generated client decodes logs as text,
 * which would mangle the binary file frames a runner writes; this asks the API directly with the
 * same credentials, with `limitBytes` one past the bound, and stops reading there itself too.
 */
export async function readPodLogBytes(config: KubeConfig, namespace: string, name: string, container: string, maxBytes: number): Promise<PodLog> {
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  const url = new URL(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}/log`, cluster.server);
  url.searchParams.set('container', container);
  url.searchParams.set('limitBytes', String(maxBytes + 1));
  const options: Record<string, unknown> = {};
  await config.applyToHTTPSOptions(options);
  return new Promise((resolve, reject) => {
    const req = request(url, { ...options, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = () => {
        const body = Buffer.concat(chunks);
        if (res.statusCode === 200) resolve({ bytes: body.subarray(0, maxBytes), cut: body.length > maxBytes });
        else reject(Object.assign(new Error(`reading the log of pod ${namespace}/${name} failed with HTTP ${res.statusCode}: ${body.toString('utf8').slice(0, 300)}`), { code: res.statusCode }));
      };
      res.on('data', (chunk: Buffer) => {
        if (size > maxBytes) return;
        chunks.push(chunk);
        size += chunk.length;
        if (size > maxBytes && res.statusCode === 200) {
          // Enough to know it is over: the rest is not read.
          res.removeAllListeners('end');
          finish();
          req.destroy();
        }
      });
      res.on('end', finish);
      res.on('error', reject);
    });
    req.on('error', reject);
    // A kubelet that takes the request and never answers must not hold the execution until its run times out.
    req.setTimeout(LOG_READ_TIMEOUT_MS, () => req.destroy(new Error(`reading the log of pod ${namespace}/${name} took more than ${LOG_READ_TIMEOUT_MS} ms`)));
    req.end();
  });
}
