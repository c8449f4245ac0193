import { createHash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unstorableFilesError, unstorablePathReason, type RunnerFile, type RunnerLimits, type UnstorableFile } from '@podflow/protocol';
import { UserFailure } from './user-failure';

/** What identifies one version of a regular file: `size:mtimeNs:inode`. */
interface FileState {
  signature: string;
  size: number;
  mtimeNs: bigint;
  /** Some name on the way is not valid UTF-8: the file cannot be stored (and `rel` is lossy). */
  invalidUtf8: boolean;
}

export type Snapshot = Map<string, FileState>;

/** A file new or changed since the snapshot before `main`. */
export interface ChangedFile {
  path: string;
  size: number;
  invalidUtf8: boolean;
}

const HASH_CHUNK = 1024 * 1024;
const SLASH = Buffer.from('/');

/**
 * Every regular file under `root` by `/`-separated relative path. Symlinks are never followed.
 * Names are read as bytes: Node would turn a name that is not valid UTF-8 into U+FFFD and then
 * fail to find the file by that name, dropping it without a word; read as bytes, it is still
 * listed, and marked, so capture can refuse it by name.
 */
export function snapshot(root: string): Snapshot {
  const found: Snapshot = new Map();
  const pending: Array<{ dir: Buffer; rel: string; invalidUtf8: boolean }> = [{ dir: Buffer.from(root), rel: '', invalidUtf8: false }];
  while (pending.length > 0) {
    const { dir, rel: relDir, invalidUtf8: dirInvalid } = pending.pop()!;
    let entries: fs.Dirent<Buffer>[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true, encoding: 'buffer' });
    } catch {
      continue; // vanished or unreadable: nothing in it can be captured
    }
    for (const entry of entries) {
      const name = entry.name;
      const invalidUtf8 = dirInvalid || !isUtf8(name);
      const rel = relDir ? `${relDir}/${name.toString('utf8')}` : name.toString('utf8');
      const full = Buffer.concat([dir, SLASH, name]);
      if (entry.isDirectory()) {
        pending.push({ dir: full, rel, invalidUtf8 });
      } else if (entry.isFile()) {
        try {
          const st = fs.lstatSync(full, { bigint: true });
          if (!st.isFile()) continue;
          found.set(rel, { signature: `${st.size}:${st.mtimeNs}:${st.ino}`, size: Number(st.size), mtimeNs: st.mtimeNs, invalidUtf8 });
        } catch {
          continue;
        }
      }
    }
  }
  return found;
}

/** Where a file's last write came in the kernel's stream (write-order.ts), when it was seen. */
export type WriteSequence = (rel: string) => number | undefined;

/**
 * Files new or changed since `before`, oldest write first: by modification time, then, for files
 * written within one clock tick, by the order the kernel reported the writes (`order`), then by path.
 */
export function changedFiles(root: string, before: Snapshot, order: WriteSequence = () => undefined): ChangedFile[] {
  const changed = [...snapshot(root)]
    .filter(([rel, state]) => before.get(rel)?.signature !== state.signature)
    .map(([rel, state]) => ({ rel, state, sequence: order(rel) ?? Number.POSITIVE_INFINITY }));
  changed.sort((a, b) => {
    if (a.state.mtimeNs !== b.state.mtimeNs) return a.state.mtimeNs < b.state.mtimeNs ? -1 : 1;
    if (a.sequence !== b.sequence) return a.sequence < b.sequence ? -1 : 1;
    return a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0;
  });
  return changed.map(({ rel, state }) => ({ path: rel, size: state.size, invalidUtf8: state.invalidUtf8 }));
}

/** Why a changed file cannot be stored (libs/protocol `unstorablePathReason`), or undefined. */
function unstorableReason(file: ChangedFile): string | undefined {
  return file.invalidUtf8 ? 'the name is not valid UTF-8' : unstorablePathReason(file.path);
}

function isInside(candidate: string, root: string): boolean {
  return candidate === root || candidate.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/** An O_NOFOLLOW read handle on a captured regular file; undefined when it is no longer safe to read. */
function openCaptured(root: string, rel: string): number | undefined {
  const full = path.join(root, ...rel.split('/'));
  let fd: number;
  try {
    // A parent directory swapped for a symlink after the walk would escape the workdir.
    if (!isInside(fs.realpathSync(full), root)) return undefined;
    // O_NONBLOCK: a FIFO swapped in after the walk must not hang the runner before fstat.
    fd = fs.openSync(full, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    if (fs.fstatSync(fd).isFile()) return fd;
  } catch {
    // unreadable metadata: treated like a file that is not regular
  }
  fs.closeSync(fd);
  return undefined;
}

/** Size and sha256 through an O_NOFOLLOW handle; undefined when the file is no longer safe to read. */
export function hashFile(root: string, rel: string): { size: number; sha256: string } | undefined {
  const fd = openCaptured(root, rel);
  if (fd === undefined) return undefined;
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(HASH_CHUNK);
    let size = 0;
    for (;;) {
      const read = fs.readSync(fd, buffer, 0, buffer.length, null);
      if (read === 0) break;
      size += read;
      hash.update(buffer.subarray(0, read));
    }
    return { size, sha256: hash.digest('hex') };
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A captured file's bytes as they are now, for `emitFiles`; empty when it can no longer be read
 * safely (the reader then sees a sha256 mismatch rather than a missing frame).
 */
export function readCapturedFile(root: string, rel: string): Buffer {
  const fd = openCaptured(root, rel);
  if (fd === undefined) return Buffer.alloc(0);
  try {
    return fs.readFileSync(fd);
  } catch {
    return Buffer.alloc(0);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Hashes the files written since `before`. A file whose path cannot be stored fails the node with
 * OUTPUT_INVALID naming it when `enforce` (the run otherwise succeeded). Over the limits:
 * FILES_TOO_LARGE when `enforce`. When the run already failed: only storable files, and the
 * prefix that fits, so the user still sees what was written without the limits being exceeded.
 */
export function captureFiles(root: string, before: Snapshot, limits: RunnerLimits, enforce: boolean, order?: WriteSequence): RunnerFile[] {
  const changed = changedFiles(root, before, order);
  const unstorable: UnstorableFile[] = changed.flatMap((file) => {
    const reason = unstorableReason(file);
    return reason ? [{ path: file.path, reason }] : [];
  });
  // Refused here, by name, rather than at upload: a failed upload after main returned could only
  // be retried by running the code again (DESIGN.md: never silently dropped).
  if (unstorable.length > 0 && enforce) {
    const error = unstorableFilesError(unstorable);
    throw new UserFailure(error.code, error.message, undefined, undefined, error.details);
  }
  let candidates = changed.filter((file) => unstorableReason(file) === undefined);
  const total = candidates.reduce((sum, file) => sum + file.size, 0);
  if (candidates.length > limits.maxFiles || total > limits.maxFilesBytes) {
    if (enforce) {
      throw new UserFailure(
        'FILES_TOO_LARGE',
        `the code wrote ${candidates.length} file(s) totalling ${total} bytes under the working directory; ` +
          `the limits are ${limits.maxFiles} files and ${limits.maxFilesBytes} bytes. Write fewer or smaller files, ` +
          'or delete temporary ones before main returns.',
      );
    }
    const kept: typeof candidates = [];
    let used = 0;
    for (const file of candidates) {
      if (kept.length >= limits.maxFiles || used + file.size > limits.maxFilesBytes) break;
      kept.push(file);
      used += file.size;
    }
    candidates = kept;
  }
  const files: RunnerFile[] = [];
  for (const candidate of candidates) {
    const hashed = hashFile(root, candidate.path);
    if (hashed) files.push({ path: candidate.path, size: hashed.size, sha256: hashed.sha256 });
  }
  return files;
}
