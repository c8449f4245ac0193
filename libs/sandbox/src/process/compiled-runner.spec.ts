import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compilePythonRunner } from './compiled-runner';

const PYTHON = '/usr/bin/python3';

describe('compilePythonRunner', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'podflow-compiled-runner-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('writes a .pyc every uid can read that runs as the source does, naming the sandbox path in tracebacks', async () => {
    const source = join(dir, 'runner.py');
    await writeFile(source, 'import sys\nprint("runner", len(sys.argv))\n\n1/0\n');
    const compiled = await compilePythonRunner(PYTHON, source, join(dir, 'out'), '/opt/podflow/runner/podflow_runner.py');
    const path = (compiled as { path: string }).path;
    const magic = execFileSync(PYTHON, ['-I', '-c', 'import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())']).toString();
    // Named by content, interpreter and magic number: workers of other versions sharing the directory never run it.
    expect(path).toMatch(new RegExp(`^${join(dir, 'out')}/podflow_runner-[0-9a-f]{16}-${magic}\\.pyc$`));
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect((await stat(join(dir, 'out'))).mode & 0o777).toBe(0o755);
    // Not the source text: byte code, with the magic number of this interpreter.
    expect((await readFile(path)).subarray(0, 4).toString('hex')).toBe(magic);
    let stderr = '';
    try {
      execFileSync(PYTHON, ['-I', '-u', path, 'a'], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      const failed = error as { stdout: Buffer; stderr: Buffer; status: number };
      expect(failed.stdout.toString()).toBe('runner 2\n');
      expect(failed.status).toBe(1);
      stderr = failed.stderr.toString();
    }
    expect(stderr).toContain('File "/opt/podflow/runner/podflow_runner.py", line 4');
    expect(stderr).toContain('ZeroDivisionError');
    // Another runner, or the same one for another interpreter, gets a file of its own.
    await writeFile(source, 'print("changed")\n');
    const other = await compilePythonRunner(PYTHON, source, join(dir, 'out'), '/opt/podflow/runner/podflow_runner.py');
    expect((other as { path: string }).path).not.toBe(path);
    expect(await compilePythonRunner('python3', source, join(dir, 'out'), '/x')).toEqual(other);
    expect(await compilePythonRunner('no-such-python', source, join(dir, 'out'), '/x')).toEqual({ failed: expect.stringContaining('no-such-python was not found') });
  });

  it('says why when the source does not compile, and leaves nothing behind', async () => {
    const source = join(dir, 'broken.py');
    await writeFile(source, 'def main(:\n');
    const compiled = await compilePythonRunner(PYTHON, source, join(dir, 'out'), '/opt/podflow/runner/podflow_runner.py');
    expect(compiled).toEqual({ failed: expect.stringContaining('SyntaxError') });
    expect(execFileSync('ls', ['-A', join(dir, 'out')]).toString()).toBe('');
  });
});
