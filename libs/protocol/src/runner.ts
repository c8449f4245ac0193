import type { CapturedLogs, Language } from './exec';
import type { NodeError } from './errors';
import type { JsonObject } from './json';

/**
 * The request/response protocol between a sandbox driver and the in-sandbox runner
 * (`libs/runner`). One protocol for every driver: the request arrives as JSON on stdin (or in the
 * file named by `--request`), the response leaves on stdout framed by nonce markers, so anything
 * else the code writes to file descriptor 1 can never be mistaken for a result.
 */
export interface RunnerLimits {
  /** Largest serialized output, in bytes (OUTPUT_TOO_LARGE beyond). */
  maxOutputBytes: number;
  /** Tail kept of each of stdout and stderr, in bytes. */
  maxLogBytes: number;
  /** Most files captured from the working directory (FILES_TOO_LARGE beyond). */
  maxFiles: number;
  /** Largest total size of captured files, in bytes (FILES_TOO_LARGE beyond). */
  maxFilesBytes: number;
}

export const DEFAULT_RUNNER_LIMITS: RunnerLimits = {
  maxOutputBytes: 8 * 1024 * 1024,
  maxLogBytes: 64 * 1024,
  maxFiles: 100,
  maxFilesBytes: 100 * 1024 * 1024,
};

export interface RunnerRequest {
  language: Language;
  code: string;
  args: JsonObject;
  /** The code's working directory; `/home/user` inside a sandbox. */
  workdir: string;
  limits: RunnerLimits;
  /** Random per execution; frames the response on stdout. */
  nonce: string;
  /**
   * Stream the captured files' bytes on stdout after the response; for drivers that cannot read
   * the sandbox's filesystem (the files vanish with it).
   */
  emitFiles?: boolean;
  /**
   * Write `requestReceivedMarker` on stderr once the request is read, before any user code runs
   * (always done with `emitFiles`). A driver that saw it knows that whatever happened next
   * happened to the code, not to the sandbox's set-up, whatever the code printed.
   */
  announce?: boolean;
  /**
   * main may return any JSON value (object, array, string, number, boolean, null): the response's
   * output is then `{ "value": <it> }`, checked like any output. Set for agent tool calls only; a
   * Code node's main returns an object.
   */
  returnAny?: boolean;
}

/** A file created or modified under `workdir` while `main` ran. */
export interface RunnerFile {
  /** Relative to `workdir`, `/`-separated, never `..`. */
  path: string;
  size: number;
  sha256: string;
}

export type RunnerResponse =
  | { ok: true; output: JsonObject; files: RunnerFile[]; logs: CapturedLogs; durationMs: number }
  | { ok: false; error: NodeError; files: RunnerFile[]; logs: CapturedLogs; durationMs: number };

export function responseStartMarker(nonce: string): string {
  return `<<<PODFLOW-RESULT ${nonce}>>>`;
}

export function responseEndMarker(nonce: string): string {
  return `<<<PODFLOW-END ${nonce}>>>`;
}

/** Starts the header line of one file frame (`emitFiles`): `<marker> {"path","size","sha256"}\n`, then `size` bytes and `\n`. */
export function fileFrameMarker(nonce: string): string {
  return `<<<PODFLOW-FILE ${nonce}>>>`;
}

/**
 * Written on stderr (`emitFiles` or `announce`) once the whole request was read, before any user
 * code runs. A worker that adopts a running sandbox finds it in the log and knows not to send the
 * request again; the process driver knows the sandbox was set up.
 */
export function requestReceivedMarker(nonce: string): string {
  return `<<<PODFLOW-REQUEST-RECEIVED ${nonce}>>>`;
}

/** Ends the file frames (`emitFiles`), also when there are none, so a reader knows the stream is complete. */
export function filesEndMarker(nonce: string): string {
  return `<<<PODFLOW-FILES-END ${nonce}>>>`;
}
