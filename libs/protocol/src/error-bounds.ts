import type { NodeError } from './errors';
import { findTooDeep } from './json-depth';

/**
 * Most characters of an error message or stack kept anywhere (run state, events, API answers,
 * `args.error`). User code decides both: an exception with a 3 MB message used to be copied into
 * every event and state write of its run (12.5 MB in one event stream).
 */
export const MAX_ERROR_TEXT_CHARS = 16 * 1024;
/** Most characters of an error's `type` (an exception class name). */
const MAX_ERROR_TYPE_CHARS = 200;
/** Most bytes of an error's `details` as JSON, and the deepest they may nest. */
const MAX_ERROR_DETAILS_BYTES = 16 * 1024;
const MAX_ERROR_DETAILS_DEPTH = 16;

/** What truncateText appends; a text that already ends with it is not cut again. */
const TRUNCATED = /… \[truncated: \d+ characters in all\]$/;

/** `text` cut to `max` characters, saying how long it was (once: cutting it again keeps the first count). */
export function truncateText(text: string, max: number): string {
  if (text.length <= max || (text.length <= max + 64 && TRUNCATED.test(text))) return text;
  return `${text.slice(0, max)}… [truncated: ${text.length} characters in all]`;
}

/**
 * The error with its message and stack cut to MAX_ERROR_TEXT_CHARS, its type to 200 characters
 * and its details dropped (with a note) when they are larger than 16 KiB of JSON or nest deeper
 * than 16 levels. The same object comes back when nothing needed cutting.
 */
export function boundNodeError(error: NodeError): NodeError {
  const message = truncateText(String(error.message ?? ''), MAX_ERROR_TEXT_CHARS);
  const stack = typeof error.stack === 'string' ? truncateText(error.stack, MAX_ERROR_TEXT_CHARS) : error.stack;
  const type = typeof error.type === 'string' ? truncateText(error.type, MAX_ERROR_TYPE_CHARS) : error.type;
  const details = error.details === undefined ? undefined : boundDetails(error.details);
  if (message === error.message && stack === error.stack && type === error.type && details === error.details) return error;
  return {
    ...error,
    message,
    ...(stack !== undefined ? { stack } : {}),
    ...(type !== undefined ? { type } : {}),
    ...(details !== undefined ? { details } : {}),
  };
}

function boundDetails(details: Record<string, unknown>): Record<string, unknown> {
  if (findTooDeep(details, MAX_ERROR_DETAILS_DEPTH) !== undefined) return { truncated: `the details nested deeper than ${MAX_ERROR_DETAILS_DEPTH} levels and were dropped` };
  const bytes = JSON.stringify(details)?.length ?? 0;
  return bytes > MAX_ERROR_DETAILS_BYTES ? { truncated: `the details were ${bytes} bytes of JSON and were dropped` } : details;
}
