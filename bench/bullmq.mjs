// Benchmark 3 baseline: raw BullMQ round trips on the same Redis. A Queue and a Worker
// (concurrency 8, fresh prefix) process N no-op jobs added with addBulk; jobs completed per second
// from the first add to the last completion.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { log } from './lib.mjs';

export async function runRawBullmq({ redisUrl, jobs, concurrency = 8 }) {
  const prefix = `bench-raw-${randomUUID().slice(0, 8)}`;
  const queueConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const workerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue('raw', { connection: queueConnection, prefix });
  let done = 0;
  let finish;
  const allDone = new Promise((resolve) => (finish = resolve));
  let lastCompletion = 0;
  const worker = new Worker('raw', async () => ({}), { connection: workerConnection, prefix, concurrency, autorun: false });
  worker.on('completed', () => {
    done += 1;
    if (done === jobs) {
      lastCompletion = performance.now();
      finish();
    }
  });
  worker.on('failed', (_job, error) => log(`raw BullMQ job failed: ${error.message}`));
  try {
    await worker.waitUntilReady();
    await queue.waitUntilReady();
    void worker.run();
    const start = performance.now();
    await queue.addBulk(Array.from({ length: jobs }, (_, i) => ({ name: 'noop', data: { i } })));
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`raw BullMQ: only ${done}/${jobs} jobs done after 120 s`)), 120_000).unref());
    await Promise.race([allDone, timeout]);
    const seconds = (lastCompletion - start) / 1000;
    const result = { jobs, concurrency, seconds, perSecond: jobs / seconds };
    log(`raw BullMQ c=${concurrency}: ${jobs} jobs in ${seconds.toFixed(2)} s = ${result.perSecond.toFixed(0)} jobs/s`);
    return result;
  } finally {
    await worker.close();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    queueConnection.disconnect();
    workerConnection.disconnect();
  }
}
