import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunnerFile, RunnerLimits } from '@podflow/protocol';
import { UserFailure } from './user-failure';

/** What identifies one version of a regular file: `size:mtimeNs:inode`. */
interface FileState {
  signature: string;
  size: number;
  mtimeNs: bigint;
}

export type Snapshot = Map<string, FileState>;

const HASH_CHUNK = 1024 * 1024;

/** Every regular file under `root` by `/`-separated relative path. Symlinks are never followed. */
export function snapshot(root: string): Snapshot {
  const found: Snapshot = new Map();
  const pending = [''];
  while (pending.length > 0) {
    const relDir = pending.pop() as string;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(relDir ? path.join(root, relDir) : root, { withFileTypes: true });
    } catch {
      continue; // vanished or unreadable: nothing in it can be captured
    }
    for (const entry of entries) {
      const rel = relDir ? `${relDir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        pending.push(rel);
      } else if (entry.isFile()) {
        try {
          const st = fs.lstatSync(path.join(root, rel), { bigint: true });
          if (!st.isFile()) continue;
          found.set(rel, { signature: `${st.size}:${st.mtimeNs}:${st.ino}`, size: Number(st.size), mtimeNs: st.mtimeNs });
        } catch {
          continue;
        }
      }
    }
  }
  return found;
}

/** Files new or changed since `before`, oldest write first (ties by path). */
export function changedFiles(root: string, before: Snapshot): { path: string; size: number }[] {
  const changed = [...snapshot(root)].filter(([rel, state]) => before.get(rel)?.signature !== state.signature);
  changed.sort(([pa, a], [pb, b]) => (a.mtimeNs < b.mtimeNs ? -1 : a.mtimeNs > b.mtimeNs ? 1 : pa < pb ? -1 : pa > pb ? 1 : 0));
  return changed.map(([rel, state]) => ({ path: rel, size: state.size }));
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
 * Hashes the files written since `before`. Over the limits: FILES_TOO_LARGE when `enforce` (the run
 * otherwise succeeded); when the run already failed, the prefix that fits, so the user still sees
 * what was written without the limits being exceeded.
 */
export function captureFiles(root: string, before: Snapshot, limits: RunnerLimits, enforce: boolean): RunnerFile[] {
  let candidates = changedFiles(root, before);
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
