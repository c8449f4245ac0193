import { createHash } from 'node:crypto';
import { fileFrameMarker, filesEndMarker, responseEndMarker, responseStartMarker, type RunnerFile, type RunnerResponse } from '@podflow/protocol';

/**
 * Frames one response for stdout: `\n<start>\n<json>\n<end>\n`. The leading newline makes the
 * start marker begin a line even when the user's code left a partial line on file descriptor 1.
 */
export function frameResponse(nonce: string, response: RunnerResponse): string {
  return `\n${responseStartMarker(nonce)}\n${JSON.stringify(response)}\n${responseEndMarker(nonce)}\n`;
}

/**
 * Finds the LAST framed response for `nonce` in a runner's stdout. Anything around it (direct writes
 * to fd 1, child processes, a forged block printed earlier) is ignored. Returns undefined when there
 * is no complete block or its JSON does not look like a RunnerResponse: the driver then reports
 * the sandbox as lost rather than trusting half a result.
 */
export function parseRunnerOutput(stdout: string, nonce: string): RunnerResponse | undefined {
  const start = `${responseStartMarker(nonce)}\n`;
  const end = `\n${responseEndMarker(nonce)}`;
  const startAt = stdout.lastIndexOf(start);
  if (startAt < 0 || (startAt > 0 && stdout[startAt - 1] !== '\n')) return undefined;
  const bodyAt = startAt + start.length;
  const endAt = stdout.indexOf(end, bodyAt);
  if (endAt < 0) return undefined;
  const after = stdout.charAt(endAt + end.length);
  if (after !== '' && after !== '\n' && after !== '\r') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout.slice(bodyAt, endAt));
  } catch {
    return undefined;
  }
  return looksLikeResponse(parsed) ? parsed : undefined;
}

/**
 * The header line of one file frame (`emitFiles`); `file.size` raw bytes and a newline follow it,
 * and after the last frame the files-end marker line.
 */
export function frameFileHeader(nonce: string, file: RunnerFile): string {
  return `${fileFrameMarker(nonce)} ${JSON.stringify({ path: file.path, size: file.size, sha256: file.sha256 })}\n`;
}

/** One file streamed after the response (`emitFiles`); `content` is a view into the parsed stdout. */
export interface EmittedFile {
  path: string;
  size: number;
  sha256: string;
  content: Buffer;
}

export type FileFramesResult = { ok: true; files: EmittedFile[] } | { ok: false; problem: string };

/** Far longer than any real header (a PATH_MAX path, JSON-escaped); beyond it the stream is corrupt. */
const MAX_HEADER_BYTES = 64 * 1024;

/**
 * Where the file frames begin: just after the first response end-marker line that is immediately
 * followed by a file frame or the files-end marker; undefined when there is none.
 *
 * Searching forward from the start means markers are only ever looked for in what precedes the
 * response, never in the file contents after it (binary, and free to hold marker-like text): those
 * are walked by their header sizes. What precedes the response (the code's direct writes to fd 1
 * under Node) cannot hold an anchor by accident, because it needs the nonce, which is random per
 * execution and only in the request the runner read. Code that digs it out of the runner's memory
 * could forge a result, but only its own, which it controls anyway.
 */
function fileFramesStart(stdout: Buffer, nonce: string): number | undefined {
  const { responseEnd, fileMarker, endLine } = frameBytes(nonce);
  for (let at = stdout.indexOf(responseEnd); at >= 0; at = stdout.indexOf(responseEnd, at + 1)) {
    const next = at + responseEnd.length;
    if (bytesAt(stdout, next, fileMarker) || bytesAt(stdout, next, endLine)) return next;
  }
  return undefined;
}

function frameBytes(nonce: string): { responseEnd: Buffer; fileMarker: Buffer; endLine: Buffer } {
  return {
    responseEnd: Buffer.from(`\n${responseEndMarker(nonce)}\n`),
    fileMarker: Buffer.from(`${fileFrameMarker(nonce)} `),
    endLine: Buffer.from(`${filesEndMarker(nonce)}\n`),
  };
}

function bytesAt(buffer: Buffer, at: number, expected: Buffer): boolean {
  return at + expected.length <= buffer.length && buffer.compare(expected, 0, expected.length, at, at + expected.length) === 0;
}

/**
 * parseRunnerOutput for a binary stdout that may carry file frames (`emitFiles`): only the bytes up
 * to the response's end marker are decoded and searched, so file contents can neither fake nor hide
 * the response. Without file frames (emitFiles off, or the stream cut before them) it is
 * parseRunnerOutput on the whole text.
 */
export function parseRunnerOutputBuffer(stdout: Buffer, nonce: string): RunnerResponse | undefined {
  return parseRunnerOutput(stdout.toString('utf8', 0, fileFramesStart(stdout, nonce) ?? stdout.length), nonce);
}

/**
 * Parses the file frames that follow the framed response for `nonce` in a binary stdout (the same
 * response parseRunnerOutputBuffer reads), checking each content against its header's sha256.
 * Anything after the files-end marker is ignored, like anything after the response.
 */
export function parseFileFrames(stdout: Buffer, nonce: string): FileFramesResult {
  const start = fileFramesStart(stdout, nonce);
  if (start === undefined) {
    return { ok: false, problem: `no file frames follow a response for nonce ${nonce}: the stream ended before them, or the request did not set emitFiles` };
  }
  const { fileMarker, endLine } = frameBytes(nonce);
  const files: EmittedFile[] = [];
  const fail = (problem: string): FileFramesResult => ({ ok: false, problem });
  for (let at = start; ; ) {
    if (bytesAt(stdout, at, endLine)) return { ok: true, files };
    const frame = `file frame ${files.length + 1}`;
    if (!bytesAt(stdout, at, fileMarker)) {
      const rest = stdout.subarray(at);
      const cut = rest.length < endLine.length && (endLine.subarray(0, rest.length).equals(rest) || fileMarker.subarray(0, rest.length).equals(rest));
      return fail(
        cut
          ? `the files-end marker is missing: the stream ends after ${files.length} complete file frame(s)`
          : `byte ${at}: expected ${frame} or the files-end marker, found ${JSON.stringify(rest.toString('utf8', 0, 40))}`,
      );
    }
    const headerAt = at + fileMarker.length;
    const lineEnd = stdout.subarray(headerAt, headerAt + MAX_HEADER_BYTES).indexOf(0x0a);
    if (lineEnd < 0) {
      return fail(stdout.length - headerAt < MAX_HEADER_BYTES ? `the stream ends inside the header of ${frame}` : `${frame} has a malformed header: no newline within ${MAX_HEADER_BYTES} bytes`);
    }
    const header = parseFileHeader(stdout.toString('utf8', headerAt, headerAt + lineEnd));
    if (typeof header === 'string') return fail(`${frame} has a malformed header: ${header}`);
    const contentAt = headerAt + lineEnd + 1;
    const available = stdout.length - contentAt;
    const named = `${frame} (${JSON.stringify(header.path)})`;
    if (available < header.size) return fail(`${named} is truncated: ${available} of its ${header.size} bytes arrived`);
    if (available === header.size) return fail(`${named} is truncated: the stream ends right after its ${header.size} bytes`);
    if (stdout[contentAt + header.size] !== 0x0a) return fail(`${named} is not followed by a newline after its ${header.size} bytes`);
    const content = stdout.subarray(contentAt, contentAt + header.size);
    const sha256 = createHash('sha256').update(content).digest('hex');
    if (sha256 !== header.sha256) {
      return fail(`${named} has sha256 ${sha256}, not the captured ${header.sha256} (the file changed or vanished after capture)`);
    }
    files.push({ ...header, content });
    at = contentAt + header.size + 1;
  }
}

/** The header's fields, or what is wrong with them. */
function parseFileHeader(json: string): RunnerFile | string {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return `not JSON: ${JSON.stringify(json.slice(0, 200))}`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const { path, size, sha256 } = value as Record<string, unknown>;
  // The protocol's RunnerFile path: relative, `/`-separated, never `..`; a consumer may write it to disk.
  if (typeof path !== 'string' || path.startsWith('/') || path.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    return `path ${JSON.stringify(path)} is not a relative path inside the workdir`;
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return `size ${JSON.stringify(size)} is not a byte count`;
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) return `sha256 ${JSON.stringify(sha256)} is not a hex sha256`;
  return { path, size, sha256 };
}

function looksLikeResponse(value: unknown): value is RunnerResponse {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  const logs = v.logs as Record<string, unknown> | null | undefined;
  const shapeOk =
    Array.isArray(v.files) &&
    typeof v.durationMs === 'number' &&
    typeof logs === 'object' &&
    logs !== null &&
    typeof logs.stdout === 'string' &&
    typeof logs.stderr === 'string';
  if (!shapeOk) return false;
  if (v.ok === true) return typeof v.output === 'object' && v.output !== null && !Array.isArray(v.output);
  if (v.ok === false) {
    const error = v.error as Record<string, unknown> | null | undefined;
    return typeof error === 'object' && error !== null && typeof error.code === 'string' && typeof error.message === 'string';
  }
  return false;
}
