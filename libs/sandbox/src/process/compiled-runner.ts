import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SANDBOX_PATH } from './bubblewrap';
import { resolveExecutable } from './host-probe';

/**
 * Python never caches the byte code of the script it is started with: every sandbox compiled the
 * 34 KB runner from source, ~3.6 ms of CPU of its ~15 (a warm sandbox pays it too, on the other
 * core, and a chain on 2 cores is bound by that CPU). So the driver compiles it once, with the
 * sandbox's own interpreter (a `.pyc` only loads in the Python version that wrote it), and
 * sandboxes run the `.pyc`. Tracebacks name the runner's sandbox path (`displayPath`) as before.
 *
 * Workers of other versions or interpreters may share the work root: the file is named by the
 * runner's content, the interpreter's real path and its magic number, so none runs another's.
 * An interpreter upgraded in place under a running worker changes its magic number; its
 * sandboxes then fail to start until the worker restarts (and compiles again).
 */
const COMPILE =
  'import importlib.util, py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], dfile=sys.argv[3], doraise=True); sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())';
const COMPILE_TIMEOUT_MS = 30_000;

/**
 * Compiles `source` into `dir` with `python` (resolved as the sandbox resolves it), readable by
 * every sandbox uid. Several drivers may share `dir`: each writes beside and renames. Returns the
 * file, or the reason it could not be made (the driver then runs the source, as before).
 */
export async function compilePythonRunner(python: string, source: string, dir: string, displayPath: string): Promise<{ path: string } | { failed: string }> {
  const partial = join(dir, `podflow_runner.${randomBytes(6).toString('hex')}.partial`);
  try {
    const interpreter = await resolveExecutable(python, SANDBOX_PATH);
    if (!interpreter) return { failed: `${python} was not found on ${SANDBOX_PATH}` };
    const content = await readFile(source);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await chmod(dir, 0o755);
    const magic = await new Promise<string>((resolve, reject) =>
      execFile(interpreter, ['-I', '-c', COMPILE, source, partial, displayPath], { timeout: COMPILE_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout, stderr) =>
        error ? reject(new Error(`${interpreter} could not compile ${source}: ${stderr.trim() || error.message}`)) : resolve(stdout.trim()),
      ),
    );
    if (!/^[0-9a-f]{8}$/.test(magic)) return { failed: `${interpreter} printed no magic number` };
    const key = createHash('sha256').update(content).update('\0').update(interpreter).digest('hex').slice(0, 16);
    const path = join(dir, `podflow_runner-${key}-${magic}.pyc`);
    await chmod(partial, 0o644);
    await rename(partial, path);
    return { path };
  } catch (error) {
    return { failed: (error as Error).message };
  } finally {
    await rm(partial, { force: true }).catch(() => undefined);
  }
}
