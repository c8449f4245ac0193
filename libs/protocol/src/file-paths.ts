/**
 * Which file paths under `/home/user` podflow can store and hand back (DESIGN.md "What the user
 * code sees"). One rule for every place that touches a captured file's path: both runners when
 * they capture files (the Python runner keeps a line-for-line copy, `unstorable_path_reason`),
 * the host-side check of the process driver, the worker before uploading, and the storage keys.
 * All of them are tested against `FILE_PATH_EXAMPLES`, so they cannot drift apart.
 *
 * Why each limit:
 * - valid UTF-8: object keys and the JSON results are UTF-8; a name in another encoding has no
 *   faithful key, and Node cannot even open it again by the name it reads.
 * - no control characters (C0, DEL, C1): a newline or escape in a name breaks logs, headers and
 *   `Content-Disposition`, and makes one file look like another in listings.
 * - no backslash: a path separator to Windows clients and archivers, so `..\evil.txt` would mean
 *   a different place to whoever downloads it.
 * - relative, non-empty segments, no `.` or `..`: a key never leaves its attempt's prefix.
 * - at most 255 bytes per name (NAME_MAX of Linux file systems, and of the local-disk store) and
 *   512 bytes per path: with the longest key prefix (`tenants/<64>/runs/<id>/nodes/<64>/<n>/` plus
 *   `S3_KEY_PREFIX`) an S3 key stays under its limit of 1024 bytes.
 */

import type { NodeError } from './errors';

/** Longest name (one path segment) that can be stored, in UTF-8 bytes. */
export const MAX_FILE_NAME_BYTES = 255;

/** Longest path relative to `/home/user` that can be stored, in UTF-8 bytes. */
export const MAX_FILE_PATH_BYTES = 512;

/** The rule in one line, for error messages that tell the user how to fix their file names. */
export const FILE_PATH_RULE =
  `file names must be valid UTF-8 without control characters or backslashes, at most ${MAX_FILE_NAME_BYTES} bytes per name ` +
  `and ${MAX_FILE_PATH_BYTES} bytes per path`;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001F\u007F-\u009F]/;

/**
 * Why `path` (relative to `/home/user`, `/`-separated) cannot be stored, or `undefined` when it
 * can. A string with unpaired surrogates is how a name that is not valid UTF-8 reaches
 * JavaScript (and Python's `surrogateescape`), so it counts as invalid UTF-8.
 */
export function unstorablePathReason(path: string): string | undefined {
  if (typeof path !== 'string' || path === '') return 'the path is empty';
  if (LONE_SURROGATE.test(path)) return 'the name is not valid UTF-8';
  const control = CONTROL_CHARACTER.exec(path);
  if (control) return `the name contains the control character ${codePointLabel(control[0])}`;
  if (path.includes('\\')) return 'the name contains a backslash (\\), a path separator on Windows';
  if (path.startsWith('/')) return 'the path is absolute';
  const segments = path.split('/');
  if (segments.some((segment) => segment === '')) return 'the path has an empty segment (// or a trailing /)';
  if (segments.some((segment) => segment === '.' || segment === '..')) return 'the path has a "." or ".." segment';
  if (segments.some((segment) => utf8Length(segment) > MAX_FILE_NAME_BYTES)) return `a name is longer than ${MAX_FILE_NAME_BYTES} bytes`;
  if (utf8Length(path) > MAX_FILE_PATH_BYTES) return `the path is longer than ${MAX_FILE_PATH_BYTES} bytes`;
  return undefined;
}

/**
 * Reference examples of the rule: `reason` is exactly what `unstorablePathReason` (and the Python
 * runner's copy) returns, `undefined` for a storable path. Tests of every implementation use them.
 */
export const FILE_PATH_EXAMPLES: ReadonlyArray<{ path: string; reason: string | undefined }> = [
  { path: 'report.csv', reason: undefined },
  { path: 'out/deep/a b (1).json', reason: undefined },
  { path: 'résumé-日本語-🙂.txt', reason: undefined },
  { path: '.hidden', reason: undefined },
  { path: 'a:b?c#d%e*f.txt', reason: undefined },
  { path: 'x'.repeat(MAX_FILE_NAME_BYTES), reason: undefined },
  { path: `${'d'.repeat(250)}/${'f'.repeat(250)}`, reason: undefined },
  { path: '', reason: 'the path is empty' },
  { path: 'bad\uDCFFname', reason: 'the name is not valid UTF-8' },
  { path: 'line\nbreak.txt', reason: 'the name contains the control character U+000A' },
  { path: 'tab\there', reason: 'the name contains the control character U+0009' },
  { path: 'esc\u001b[31m.txt', reason: 'the name contains the control character U+001B' },
  { path: 'del\u007f', reason: 'the name contains the control character U+007F' },
  { path: 'c1\u0085', reason: 'the name contains the control character U+0085' },
  { path: '..\\evil.txt', reason: 'the name contains a backslash (\\), a path separator on Windows' },
  { path: 'dir\\file', reason: 'the name contains a backslash (\\), a path separator on Windows' },
  { path: '/etc/passwd', reason: 'the path is absolute' },
  { path: 'a//b', reason: 'the path has an empty segment (// or a trailing /)' },
  { path: 'a/', reason: 'the path has an empty segment (// or a trailing /)' },
  { path: '../evil.txt', reason: 'the path has a "." or ".." segment' },
  { path: 'a/./b', reason: 'the path has a "." or ".." segment' },
  { path: 'x'.repeat(MAX_FILE_NAME_BYTES + 1), reason: `a name is longer than ${MAX_FILE_NAME_BYTES} bytes` },
  { path: 'é'.repeat(128), reason: `a name is longer than ${MAX_FILE_NAME_BYTES} bytes` },
  { path: `${'d'.repeat(200)}/${'e'.repeat(200)}/${'f'.repeat(200)}`, reason: `the path is longer than ${MAX_FILE_PATH_BYTES} bytes` },
];

/** A captured file that cannot be stored, and why (`unstorablePathReason`). */
export interface UnstorableFile {
  /** Relative to `/home/user`; in the error, bytes that are not UTF-8 are shown as U+FFFD. */
  path: string;
  reason: string;
}

/** Files named in the message and in `details.files`; the count says how many there were. */
const LISTED_FILES = 5;

/**
 * The node error for files that cannot be stored: OUTPUT_INVALID naming them, why, and how to fix
 * it. The Python runner builds the same message (`unstorable_files_error`).
 */
export function unstorableFilesError(files: readonly UnstorableFile[]): NodeError {
  // A name that is not UTF-8 is shown with U+FFFD, as Node and Python's "replace" decode it.
  const listed = files.slice(0, LISTED_FILES).map((file) => ({ path: file.path.replace(LONE_SURROGATES, '\uFFFD'), reason: file.reason }));
  const more = files.length > listed.length ? `, and ${files.length - listed.length} more` : '';
  return {
    code: 'OUTPUT_INVALID',
    message:
      `${files.length} file(s) written under /home/user cannot be stored: ` +
      `${listed.map((file) => `${JSON.stringify(file.path)} (${file.reason})`).join(', ')}${more}. ` +
      `Rename them or delete them before main returns; ${FILE_PATH_RULE}.`,
    details: { files: listed.map((file) => ({ path: file.path, reason: file.reason })), count: files.length },
  };
}

function codePointLabel(character: string): string {
  return `U+${(character.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

function utf8Length(text: string): number {
  let bytes = 0;
  for (const character of text) {
    const code = character.codePointAt(0) ?? 0;
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
  }
  return bytes;
}
