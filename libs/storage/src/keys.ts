import { FILE_PATH_RULE, PodflowError, unstorablePathReason } from '@podflow/protocol';
import { lookup } from 'mime-types';

export interface FileKeyParts {
  tenantId: string;
  runId: string;
  nodeId: string;
  attempt: number;
  /** Path relative to `/home/user`; must pass `storableFilePath`. */
  path: string;
}

/**
 * `tenants/<t>/runs/<run>/nodes/<node>/<attempt>/<path>` (DESIGN.md "Storage"). Throws
 * OUTPUT_INVALID for a path the store cannot hold (see `storableFilePath`).
 */
export function fileKey(parts: FileKeyParts): string {
  return `tenants/${parts.tenantId}/runs/${parts.runId}/nodes/${parts.nodeId}/${parts.attempt}/${storableFilePath(parts.path)}`;
}

/** What a stored node payload holds: the node's output, or the args of one of its jobs. */
export type NodePayloadKind = 'output' | 'args';

export interface NodePayloadKeyParts {
  tenantId: string;
  runId: string;
  nodeId: string;
  attempt: number;
  kind: NodePayloadKind;
  /** Hex sha256 of the payload's bytes. */
  sha256: string;
}

/**
 * `tenants/<t>/runs/<run>/nodes/<node>/<attempt>.<kind>.<sha256>.json`: beside the attempt's
 * files prefix (`.../<attempt>/<path>`), never inside it, so no file the code writes can collide.
 * The sha256 makes the key immutable: a re-delivered execution storing a different output gets a
 * different key instead of overwriting bytes a reference already points at.
 */
export function nodePayloadKey(parts: NodePayloadKeyParts): string {
  return `tenants/${parts.tenantId}/runs/${parts.runId}/nodes/${parts.nodeId}/${parts.attempt}.${parts.kind}.${checkedSha256(parts.sha256)}.json`;
}

/** `tenants/<t>/runs/<run>/outputs.<sha256>.json`: the run's `outputs`, when too large to keep inline. */
export function runOutputsKey(parts: { tenantId: string; runId: string; sha256: string }): string {
  return `tenants/${parts.tenantId}/runs/${parts.runId}/outputs.${checkedSha256(parts.sha256)}.json`;
}

function checkedSha256(sha256: string): string {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new PodflowError('BAD_REQUEST', `"${sha256}" is not a hex sha256; payload keys end in the payload's digest`);
  return sha256;
}

/**
 * `path` unchanged when the store can hold it (the one rule of libs/protocol `unstorablePathReason`,
 * which the runners apply when they capture files); otherwise OUTPUT_INVALID naming the path and
 * the reason. Nothing is rewritten: `..\x` stays a name with a backslash (refused), never `../x`.
 */
export function storableFilePath(path: string): string {
  const reason = unstorablePathReason(path);
  if (reason !== undefined) {
    throw new PodflowError('OUTPUT_INVALID', `file ${JSON.stringify(path)} under /home/user cannot be stored: ${reason}; ${FILE_PATH_RULE}`, { path, reason });
  }
  return path;
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

/**
 * The Content-Disposition every download is served with: an attachment named after the file.
 * Tenant files are served from podflow's own address (local disk) or the bucket's, and inline an
 * HTML or SVG file a node wrote would run its script there (a red-team finding). The name is
 * given twice: plain ASCII for old clients, and exactly, percent-encoded, as `filename*`.
 */
export function downloadDisposition(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const exact = encodeURIComponent(name).replace(/['()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${exact}`;
}
