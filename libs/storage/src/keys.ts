import { PodflowError } from '@podflow/protocol';
import { lookup } from 'mime-types';
import { posix } from 'node:path';

export interface FileKeyParts {
  tenantId: string;
  runId: string;
  nodeId: string;
  attempt: number;
  /** Path relative to `/home/user`. */
  path: string;
}

/** `tenants/<t>/runs/<run>/nodes/<node>/<attempt>/<path>` (DESIGN.md "Storage"). */
export function fileKey(parts: FileKeyParts): string {
  return `tenants/${parts.tenantId}/runs/${parts.runId}/nodes/${parts.nodeId}/${parts.attempt}/${safeRelativePath(parts.path)}`;
}

/** Rejects absolute paths and `..` so a key can never climb out of its prefix. */
export function safeRelativePath(path: string): string {
  const normalized = posix.normalize(path.replace(/\\/g, '/'));
  if (normalized.startsWith('/') || normalized === '..' || normalized.startsWith('../') || normalized === '.') {
    throw new PodflowError('BAD_REQUEST', `file path "${path}" must be relative to /home/user and stay inside it`);
  }
  return normalized;
}

/** Checks a whole storage key: non-empty `/`-separated segments, none of them `.` or `..`. */
export function assertSafeKey(key: string): void {
  const segments = key.split('/');
  if (key.length === 0 || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new PodflowError('BAD_REQUEST', `storage key "${key}" is not a plain relative key`);
  }
}

export function contentTypeOf(fileName: string): string {
  return lookup(fileName) || 'application/octet-stream';
}
