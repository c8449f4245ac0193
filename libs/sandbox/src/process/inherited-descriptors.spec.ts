import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Real sandboxes, started by a separate worker-like process that inherits descriptors the way a
// worker started from a shell redirect or a supervisor would: nothing here is mocked.
jest.setTimeout(60_000);

const SECRET = 'worker-credential-that-no-sandbox-may-read';

/** Code that lists the sandbox's descriptors and tries to read the ones the worker inherited. */
const PROBE = [
  'import os',
  'def main(args):',
  '    fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))',
  '    found = {}',
  '    for fd in (100, 101):',
  '        try:',
  '            found[str(fd)] = os.pread(fd, 200, 0).decode(errors="replace")',
  '        except OSError as error:',
  '            found[str(fd)] = None',
  '        try:',
  '            found[str(fd) + "/listing"] = sorted(os.listdir(f"/proc/self/fd/{fd}"))[:5]',
  '        except OSError:',
  '            pass',
  '    return {"fds": fds, "found": found}',
].join('\n');

describe('descriptors the worker inherited', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'podflow-inherited-fds-'));
    await chmod(root, 0o711);
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('never reach a sandbox, warm or cold: the driver closes them before the first one starts, and says which', async () => {
    const secretFile = join(root, 'secret.txt');
    await writeFile(secretFile, SECRET);
    const workRoot = join(root, 'work');
    // The worker gets a file at fd 100 and a directory (the host's root) at fd 101, both without
    // close-on-exec, as a shell's `100<secret 101</` would give them.
    const script = `
      const { ProcessDriver } = require(${JSON.stringify(join(__dirname, '..', '..', 'dist', 'index.js'))});
      const warnings = [];
      const driver = new ProcessDriver({ isolation: 'bubblewrap', workRoot: ${JSON.stringify(workRoot)}, warmPoolSize: 1, logger: { warn: (obj, msg) => warnings.push({ obj, msg }), info: () => undefined } });
      const request = (id) => ({ executionId: 'fds.' + id, tenantId: 't', runId: 'fds', nodeId: 'n', attempt: 1, language: 'python', code: ${JSON.stringify(PROBE)}, args: {}, timeoutMs: 20000, dependencies: [], network: false });
      (async () => {
        await driver.init();
        for (let i = 0; i < 300 && driver.poolStats().waiting.python < 1; i++) await new Promise((r) => setTimeout(r, 20));
        const warm = await driver.execute(request('warm'), new AbortController().signal);
        // A second at once finds the pool still refilling: it starts cold.
        const [second, cold] = await Promise.all([driver.execute(request('second'), new AbortController().signal), driver.execute(request('cold'), new AbortController().signal)]);
        for (const o of [warm, second, cold]) await o.dispose();
        await driver.close();
        process.stdout.write(JSON.stringify({ outcomes: [warm, second, cold].map((o) => ({ status: o.status, output: o.output, error: o.error })), warnings }));
      })().catch((error) => { console.error(error); process.exit(3); });`;
    const file = openSync(secretFile, 'r');
    const directory = openSync('/', 'r');
    const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'pipe', 'pipe', ...Array<'ignore'>(97).fill('ignore'), file, directory];
    const child = spawn(process.execPath, ['-e', script], { stdio });
    closeSync(file);
    closeSync(directory);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ code, stderr: stderr.slice(-2000) }).toEqual({ code: 0, stderr: '' });
    const { outcomes, warnings } = JSON.parse(stdout) as {
      outcomes: Array<{ status: string; output: { fds: number[]; found: Record<string, unknown> } }>;
      warnings: Array<{ obj: { descriptors?: Array<{ fd: number; target: string }> }; msg: string }>;
    };
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('succeeded');
      expect(outcome.output.fds).not.toContain(100);
      expect(outcome.output.fds).not.toContain(101);
      expect(outcome.output.found).toEqual({ '100': null, '101': null });
    }
    const closed = warnings.find((w) => w.msg.startsWith('closed file descriptors this process inherited'));
    expect(closed?.obj.descriptors).toEqual(expect.arrayContaining([{ fd: 100, target: secretFile }, { fd: 101, target: '/' }]));
  });
});
