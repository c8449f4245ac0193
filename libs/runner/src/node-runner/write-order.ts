// The module object itself (not a namespace copy of it, whose properties are getters): its functions are replaced.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Functions of node:fs (callback and `Sync` forms, and fs.promises) whose argument at `path` names a file they write, rename, copy, truncate or re-time. */
const BY_PATH: ReadonlyArray<readonly [name: string, path: number]> = [
  ['writeFile', 0],
  ['appendFile', 0],
  ['truncate', 0],
  ['utimes', 0],
  ['lutimes', 0],
  ['copyFile', 1],
  ['cp', 1],
  ['rename', 1],
  ['link', 1],
];
/** Functions whose first argument is a file descriptor written to (its path is known from `open`). */
const BY_FD = ['write', 'writev', 'ftruncate', 'futimes'] as const;
/** Methods of a FileHandle opened for writing that write to it. */
const HANDLE_METHODS = ['write', 'writev', 'writeFile', 'appendFile', 'truncate', 'utimes', 'close'] as const;

type AnyFunction = (...args: unknown[]) => unknown;

/**
 * The order in which the code wrote files under the workdir. Modification times alone cannot order
 * files written back to back: they share a clock tick (several milliseconds), so capture would fall
 * back to the path. file-capture.ts sorts by mtime, then by this sequence (each file's last write
 * seen), then by path.
 *
 * The runner wraps node:fs before the code is loaded: every form (callback, `Sync`, fs.promises and
 * the FileHandles it opens; write streams go through fs.open and fs.write) of the functions that
 * write, append, truncate, copy, rename, link or re-time a file notes the file's path in sequence,
 * and a descriptor opened for writing is remembered with its path. The Python runner does the same
 * with audit hooks. Neither costs anything measurable; an inotify watch did the same job, but the
 * kernel makes a process that had one wait for an RCU grace period when it exits (about 8 ms per
 * execution here). What this cannot see: files written by subprocesses or native addons; those keep
 * the mtime-then-path order. A wrapper never throws on its own account and changes no result.
 */
export class WriteOrder {
  private readonly sequence = new Map<string, number>();
  private readonly fdPaths = new Map<number, string>();
  private next = 0;
  private active = true;

  private constructor(private readonly root: string) {}

  /** Starts recording the writes under `root` (wrapping node:fs first, unless prewarm did). */
  static record(root: string): WriteOrder {
    installWriteHooks();
    const order = new WriteOrder(root);
    recorder = order;
    return order;
  }

  /** The sequence of a file's last write seen, or undefined when none was seen. */
  of(rel: string): number | undefined {
    return this.sequence.get(rel);
  }

  /** Stops recording (the runner lists the files next; its own writes are not the code's). */
  stop(): void {
    this.active = false;
  }

  /** A write to the file at `target` (a path, Buffer or file: URL, relative to the workdir), or to a known descriptor. */
  saw(target: unknown): void {
    if (!this.active) return;
    const rel = typeof target === 'number' ? this.fdPaths.get(target) : this.relative(target);
    if (rel !== undefined) this.sequence.set(rel, this.next++);
  }

  /** A descriptor closed, or opened for reading: it no longer stands for a file written to. */
  forget(fd: unknown): void {
    if (typeof fd === 'number') this.fdPaths.delete(fd);
  }

  /** A descriptor opened for writing: later writes to it count for its file. */
  opened(fd: unknown, target: unknown): void {
    if (typeof fd !== 'number') return;
    // The number may have stood for another file before: whatever happens next, not that one.
    this.fdPaths.delete(fd);
    if (!this.active) return;
    const rel = this.relative(target);
    if (rel === undefined) return;
    this.fdPaths.set(fd, rel);
    this.sequence.set(rel, this.next++);
  }

  private relative(target: unknown): string | undefined {
    try {
      const file = typeof target === 'string' ? target : Buffer.isBuffer(target) ? target.toString() : target instanceof URL ? fileURLToPath(target) : undefined;
      if (file === undefined) return undefined;
      const rel = path.relative(this.root, path.resolve(file));
      // Outside the workdir (`..` as a whole segment: a file named `..x` is inside).
      if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) return undefined;
      return rel.split(path.sep).join('/');
    } catch {
      return undefined;
    }
  }
}

/** Whether `open` flags (a string such as 'w', 'a+', or O_* bits) ask for writing. */
function writes(flags: unknown): boolean {
  if (typeof flags === 'string') return /[wax+]/.test(flags);
  if (typeof flags === 'number') return (flags & (fs.constants.O_WRONLY | fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_APPEND)) !== 0;
  return false;
}

/** Replaces `owner[name]` with `wrapper`, keeping the original's own properties (promisify symbols, name, length). */
function replace(owner: Record<string, unknown>, name: string, wrap: (original: AnyFunction) => AnyFunction): void {
  const original = owner[name];
  if (typeof original !== 'function') return;
  const wrapper = wrap(original as AnyFunction);
  Object.defineProperties(wrapper, Object.getOwnPropertyDescriptors(original));
  owner[name] = wrapper;
}

/** The execution's WriteOrder once the runner has made it; before that the wrappers note nothing. */
let recorder: WriteOrder | undefined;
let installed = false;

function note(action: (order: WriteOrder) => void): void {
  const order = recorder;
  if (!order) return;
  try {
    action(order);
  } catch {
    // Ordering is best effort: never fail the code's own call.
  }
}

/**
 * Wraps node:fs once per process. A warm sandbox does it while it waits for its request (~3 ms
 * here, most of it the first load of fs.promises); the wrappers record for the WriteOrder made
 * once the request is known.
 */
export function installWriteHooks(): void {
  if (installed) return;
  // Only once it worked: a warm-up that failed (and was ignored) is tried again, and fails loudly, at the request.
  install();
  installed = true;
}

function install(): void {
  const sync = fs as unknown as Record<string, unknown>;
  const promises = fs.promises as unknown as Record<string, unknown>;
  for (const [name, at] of BY_PATH) {
    for (const [owner, key] of [[sync, name], [sync, `${name}Sync`], [promises, name]] as const) {
      replace(owner, key, (original) =>
        function (this: unknown, ...args: unknown[]) {
          note((order) => order.saw(args[at]));
          return original.apply(this, args);
        },
      );
    }
  }
  for (const name of BY_FD) {
    for (const key of [name, `${name}Sync`]) {
      replace(sync, key, (original) =>
        function (this: unknown, ...args: unknown[]) {
          note((order) => order.saw(args[0]));
          return original.apply(this, args);
        },
      );
    }
  }
  // A close is the file's last write; the descriptor number may then stand for another file.
  for (const key of ['close', 'closeSync']) {
    replace(sync, key, (original) =>
      function (this: unknown, ...args: unknown[]) {
        note((order) => {
          order.saw(args[0]);
          order.forget(args[0]);
        });
        return original.apply(this, args);
      },
    );
  }
  replace(sync, 'openSync', (original) =>
    function (this: unknown, ...args: unknown[]) {
      const fd = original.apply(this, args);
      note((order) => (writes(args[1]) ? order.opened(fd, args[0]) : order.forget(fd)));
      return fd;
    },
  );
  replace(sync, 'open', (original) =>
    function (this: unknown, ...args: unknown[]) {
      const last = args.length - 1;
      const callback = args[last];
      if (typeof callback === 'function') {
        const writing = writes(args[1]);
        args[last] = function (this: unknown, error: unknown, fd: unknown) {
          if (!error) note((order) => (writing ? order.opened(fd, args[0]) : order.forget(fd)));
          return (callback as AnyFunction).call(this, error, fd);
        };
      }
      return original.apply(this, args);
    },
  );
  replace(promises, 'open', (original) =>
    async function (this: unknown, ...args: unknown[]) {
      const handle = (await original.apply(this, args)) as Record<string, unknown> & { fd: number };
      const fd = handle.fd;
      if (!writes(args[1])) {
        note((order) => order.forget(fd));
        return handle;
      }
      note((order) => order.opened(fd, args[0]));
      for (const method of HANDLE_METHODS) {
        replace(handle, method, (bound) =>
          function (this: unknown, ...methodArgs: unknown[]) {
            note((order) => {
              order.saw(fd);
              if (method === 'close') order.forget(fd);
            });
            return bound.apply(this, methodArgs);
          },
        );
      }
      return handle;
    },
  );
  // `import { writeFileSync } from 'node:fs'` in an ES module (a dynamic import) sees the wrappers too.
  syncBuiltinESMExports();
}
