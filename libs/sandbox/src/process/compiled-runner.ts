import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runProbe } from './host-probe';

/**
 * Python never caches the byte code of the script it is started with: every sandbox compiled the
 * 34 KB runner from source, ~3.6 ms of CPU of its ~15 (a warm sandbox pays it too, on the other
 * core, and a chain on 2 cores is bound by that CPU). So the driver compiles it once, with the
 * sandbox's own interpreter (a `.pyc` only loads in the Python version that wrote it), and
 * sandboxes run the `.pyc`. Tracebacks name the runner's sandbox path (`displayPath`) as before.
 */
const COMPILE = 'import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], dfile=sys.argv[3], doraise=True)';

/**
 * Compiles `source` to `<dir>/podflow_runner.pyc` with `python`, readable by every sandbox uid.
 * Several drivers may share `dir`: each writes beside and renames. Returns the file, or the reason
 * it could not be made (the driver then runs the source, as before).
 */
export async function compilePythonRunner(python: string, source: string, dir: string, displayPath: string): Promise<{ path: string } | { failed: string }> {
  const path = join(dir, 'podflow_runner.pyc');
  const partial = `${path}.${randomBytes(6).toString('hex')}.partial`;
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await chmod(dir, 0o755);
    const compiled = await runProbe(python, ['-I', '-c', COMPILE, source, partial, displayPath]);
    if (!compiled.ok) return { failed: compiled.detail };
    await chmod(partial, 0o644);
    await rename(partial, path);
    return { path };
  } catch (error) {
    return { failed: (error as Error).message };
  } finally {
    await rm(partial, { force: true });
  }
}
