import { createHash } from 'node:crypto';
import { fileFrameMarker, filesEndMarker, responseEndMarker, responseStartMarker, type RunnerFile, type RunnerLimits, type RunnerResponse } from '@podflow/protocol';

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
 * the sandbox as lost rather than trusting half a result. Not bounded: drivers read answers with
 * readRunnerResponse.
 */
export function parseRunnerOutput(stdout: string, nonce: string): RunnerResponse | undefined {
  const body = responseBody(stdout, nonce);
  return body === undefined ? undefined : parseResponse(body);
}

/**
 * What a host parses of one answer. The user's code shares the runner's process and can write an
 * answer of its own, of any size its stdout cap lets through (117 MiB on Kubernetes, where files
 * share the stream): JSON.parse of that much `[{},{},...]` took 72 s and 2.6 GB of a worker's
 * heap. The bounds are measured on the text first, in one pass, so nothing over them is parsed.
 */
export interface ResponseBounds {
  /** Longest JSON text of a response: the output, both logs escaped, the file list, an error. */
  maxBytes: number;
  /** Most objects and arrays in it: each costs ~64 bytes of heap for its 3 bytes of text (`{},`). */
  maxContainers: number;
}

/** The bounds of an answer to a request with these limits. */
export function responseBounds(limits: Pick<RunnerLimits, 'maxOutputBytes' | 'maxLogBytes' | 'maxFiles'>): ResponseBounds {
  return {
    // A log's byte can become six of JSON (\u0000); a file path at most 4,096 bytes, each six.
    maxBytes: limits.maxOutputBytes + 12 * limits.maxLogBytes + limits.maxFiles * 32 * 1024 + 1024 * 1024,
    // 524,288 for an 8 MiB output (33 MB of heap parsed); real data is mostly strings and numbers.
    maxContainers: Math.max(4096, Math.floor(limits.maxOutputBytes / 16)) + limits.maxFiles + 64,
  };
}

/** An answer as a driver reads it: parsed, refused before parsing (what is over), or none found. */
export type BoundedResponse = { response: RunnerResponse } | { refused: string } | undefined;

/**
 * parseRunnerOutput (or parseRunnerOutputBuffer, for a Buffer), held to `bounds` before the JSON
 * is parsed.
 */
export function readRunnerResponse(stdout: string | Buffer, nonce: string, bounds: ResponseBounds): BoundedResponse {
  const text = typeof stdout === 'string' ? stdout : responseText(stdout, nonce);
  const body = responseBody(text, nonce);
  if (body === undefined) return undefined;
  // A UTF-16 unit is at most 3 bytes of UTF-8: the byte count is needed only near the bound.
  if (body.length > bounds.maxBytes || (body.length * 3 > bounds.maxBytes && Buffer.byteLength(body) > bounds.maxBytes)) {
    return { refused: `the answer is ${Buffer.byteLength(body)} bytes of JSON, more than the ${bounds.maxBytes} a runner writes at most (the output limit, both logs, the file list)` };
  }
  // Each object or array takes at least 2 characters: a shorter text cannot hold too many.
  if (body.length > 2 * bounds.maxContainers && countContainers(body, bounds.maxContainers) > bounds.maxContainers) {
    return { refused: `the answer holds more than ${bounds.maxContainers} objects and arrays (the output limit / 16)` };
  }
  const response = parseResponse(body);
  return response ? { response } : undefined;
}

/** The JSON text of the last complete response block for `nonce`, or undefined. */
function responseBody(stdout: string, nonce: string): string | undefined {
  const start = `${responseStartMarker(nonce)}\n`;
  const end = `\n${responseEndMarker(nonce)}`;
  const startAt = stdout.lastIndexOf(start);
  if (startAt < 0 || (startAt > 0 && stdout[startAt - 1] !== '\n')) return undefined;
  const bodyAt = startAt + start.length;
  const endAt = stdout.indexOf(end, bodyAt);
  if (endAt < 0) return undefined;
  const after = stdout.charAt(endAt + end.length);
  if (after !== '' && after !== '\n' && after !== '\r') return undefined;
  return stdout.slice(bodyAt, endAt);
}

function parseResponse(body: string): RunnerResponse | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  return looksLikeResponse(parsed) ? parsed : undefined;
}

/** Objects and arrays opened in JSON `text` (brackets outside strings), counting up to just past `stopAbove`. */
export function countContainers(text: string, stopAbove: number): number {
  let count = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (inString) {
      if (unit === 0x5c) i++; // a backslash escapes the next unit (\" and \\ included)
      else if (unit === 0x22) inString = false;
    } else if (unit === 0x22) {
      inString = true;
    } else if ((unit === 0x7b || unit === 0x5b) && ++count > stopAbove) {
      return count;
    }
  }
  return count;
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

/** `tooMany`: more frames followed than allowed, a bound rather than a broken stream. */
export type FileFramesResult = { ok: true; files: EmittedFile[] } | { ok: false; problem: string; tooMany?: true };

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
  return parseRunnerOutput(responseText(stdout, nonce), nonce);
}

/** The part of a binary stdout the response is looked for in: everything before the file frames. */
function responseText(stdout: Buffer, nonce: string): string {
  return stdout.toString('utf8', 0, fileFramesStart(stdout, nonce) ?? stdout.length);
}

/**
 * Parses the file frames that follow the framed response for `nonce` in a binary stdout (the same
 * response parseRunnerOutputBuffer reads), checking each content against its header's sha256, and
 * failing once more than `maxFrames` follow (the answer's own file count: a forged stream of a
 * million empty frames took 5 s and 0.5 GB before any count was checked).
 * Anything after the files-end marker is ignored, like anything after the response.
 */
export function parseFileFrames(stdout: Buffer, nonce: string, maxFrames = Number.POSITIVE_INFINITY): FileFramesResult {
  const start = fileFramesStart(stdout, nonce);
  if (start === undefined) {
    return { ok: false, problem: `no file frames follow a response for nonce ${nonce}: the stream ended before them, or the request did not set emitFiles` };
  }
  const { fileMarker, endLine } = frameBytes(nonce);
  const files: EmittedFile[] = [];
  const fail = (problem: string): FileFramesResult => ({ ok: false, problem });
  for (let at = start; ; ) {
    if (bytesAt(stdout, at, endLine)) return { ok: true, files };
    // Each frame costs a header parse and a hash: no more than the answer listed are read.
    if (files.length >= maxFrames) return { ok: false, problem: `more file frames follow than the ${maxFrames} the answer lists`, tooMany: true };
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
