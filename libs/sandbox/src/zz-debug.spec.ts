import { ProcessDriver } from './process-driver';
import { mkdtemp, chmod, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
jest.setTimeout(120000);
const req = (o: any) => ({ executionId: 'e', tenantId: 't', runId: 'r', nodeId: 'n', attempt: 1, language: 'python', args: {}, timeoutMs: 60000, dependencies: [], network: false, ...o });
it('debug', async () => {
  const workRoot = await mkdtemp(join(tmpdir(), 'dbg-')); await chmod(workRoot, 0o711);
  const s = new AbortController().signal;
  for (const mib of [64, 128, 512, 2048]) {
    const d = new ProcessDriver({ isolation: 'bubblewrap', workRoot, memoryLimitBytes: mib*1024*1024 });
    const hello = await d.execute(req({ language: 'typescript', code: 'export function main(): {x: number} { return { x: 1 } }' }), s);
    const hog = await d.execute(req({ language: 'javascript', code: 'function main() {\n  const hog = [];\n  for (let i=0;;i++) { hog.push(new Array(100000).fill(1.5)); if (i%50==0) process.stderr.write("heapMiB " + (process.memoryUsage().heapUsed>>20) + "\\n"); }\n}\n' }), s);
    const buf = await d.execute(req({ language: 'javascript', code: 'function main() {\n  const hog = []; let total = 0;\n  try { for (;;) { hog.push(Buffer.alloc(16 * 1024 * 1024, 1)); total += 16; } } catch (e) { return { total, rss: process.memoryUsage().rss >> 20, err: String(e) } }\n}\n' }), s);
    const py = await d.execute(req({ code: 'def main(args):\n    hog=[]\n    try:\n        while True: hog.append(bytearray(16*1024*1024))\n    except MemoryError:\n        return {"total": 16*len(hog)}\n' }), s);
    const lastHeap = (hog.error?.details?.stderrTail as string ?? '').match(/heapMiB \d+/g)?.pop();
    console.log(mib, 'hello', hello.status, hello.error?.message?.slice(0, 200), '| hog', hog.error?.code, lastHeap, String(hog.error?.details?.stderrTail ?? '').match(/FATAL ERROR.*|Fatal process.*/)?.[0], '| buf', JSON.stringify(buf.output ?? buf.error?.code), '| py', JSON.stringify(py.output ?? py.error?.code));
    await d.close();
  }
  await rm(workRoot, { recursive: true, force: true });
});
