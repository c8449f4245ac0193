import { unstorableFilesError, unstorablePathReason, type NodeError, type RunnerFile, type UnstorableFile } from '@podflow/protocol';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, realpath } from 'node:fs/promises';
import { isAbsolute, posix, resolve, sep } from 'node:path';
import type { CollectedFile } from '../driver';
import { filesTooLarge } from '../limits';

export interface FileCollectLimits {
  maxFiles: number;
  maxFilesBytes: number;
}

/** A file the runner reported that the host refused to hand out, and why. */
export interface RejectedFile {
  path: string;
  reason: string;
}

export type FileCollectResult =
  | { ok: true; files: CollectedFile[]; rejected: RejectedFile[] }
  | { ok: false; error: NodeError; rejected: RejectedFile[] };

/**
 * Turns the files the runner reported into `CollectedFile`s over the execution's host directory.
 * The runner ran next to the user's code, so its report is untrusted: each path is checked again
 * on the host, and size and sha256 are recomputed from the bytes on disk. A path that cannot be
 * stored (libs/protocol `unstorablePathReason`: the rule the runners apply) fails the execution
 * with OUTPUT_INVALID, as the runner would have, so it never reaches the upload; one that can but
 * does not name a regular file inside `homeDir` (a symlink, one on the way, missing) is refused and
 * listed in `rejected`. Call it only once the sandbox is dead, so nothing can swap a file between
 * the check and `open()`.
 */
export async function collectFiles(homeDir: string, reported: readonly RunnerFile[], limits: FileCollectLimits): Promise<FileCollectResult> {
  const files: CollectedFile[] = [];
  const rejected: RejectedFile[] = [];
  // A runner never reports more than maxFiles; a longer list was written by the code (one lstat each).
  if (reported.length > limits.maxFiles) return { ok: false, rejected, error: filesTooLarge(limits) };
  const root = await realpath(homeDir);
  const unstorable: UnstorableFile[] = reported.flatMap((entry) => {
    const reason = typeof entry?.path === 'string' ? unstorablePathReason(entry.path) : undefined;
    return reason ? [{ path: entry.path, reason }] : [];
  });
  if (unstorable.length > 0) return { ok: false, rejected, error: unstorableFilesError(unstorable) };
  const seen = new Set<string>();
  let totalBytes = 0;
  for (const entry of reported) {
    const checked = await checkFile(root, entry?.path);
    if ('reason' in checked) {
      rejected.push({ path: String(entry?.path), reason: checked.reason });
      continue;
    }
    if (seen.has(checked.path)) continue;
    seen.add(checked.path);
    totalBytes += checked.size;
    if (files.length + 1 > limits.maxFiles || totalBytes > limits.maxFilesBytes) {
      return { ok: false, rejected, error: filesTooLarge(limits) };
    }
    const { sha256 } = await hashFile(checked.fullPath);
    const fullPath = checked.fullPath;
    files.push({ path: checked.path, size: checked.size, sha256, open: () => createReadStream(fullPath) });
  }
  return { ok: true, files, rejected };
}

type CheckedFile = { path: string; fullPath: string; size: number } | { reason: string };

async function checkFile(root: string, path: unknown): Promise<CheckedFile> {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) return { reason: 'not a path' };
  const normalized = posix.normalize(path);
  if (isAbsolute(path) || normalized !== path || path.split('/').includes('..') || path.startsWith('./')) {
    return { reason: 'not a normalized relative path' };
  }
  const fullPath = resolve(root, ...path.split('/'));
  if (!fullPath.startsWith(root + sep)) return { reason: 'outside the working directory' };
  const info = await lstat(fullPath).catch(() => undefined);
  if (!info) return { reason: 'missing' };
  if (info.isSymbolicLink()) return { reason: 'a symbolic link' };
  if (!info.isFile()) return { reason: 'not a regular file' };
  // A symlinked directory on the way would make the lexical path lie about where the bytes are.
  if ((await realpath(fullPath)) !== fullPath) return { reason: 'reached through a symbolic link' };
  return { path, fullPath, size: info.size };
}

function hashFile(path: string): Promise<{ sha256: string }> {
  return new Promise((done, fail) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', fail)
      .on('end', () => done({ sha256: hash.digest('hex') }));
  });
}
