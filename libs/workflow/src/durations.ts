/**
 * Durations as users write them in definitions: `500ms`, `20s`, `5m`, `1h`, compounds such as
 * `1m30s`, or a plain number of seconds. Everything inside podflow is milliseconds.
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

/** The one wording used for bad durations, so the API, the CLI and validation agree. */
export const DURATION_HINT = 'use a number of seconds or a string like 500ms, 20s, 5m, 1h or 1m30s';

/**
 * Parses a duration to whole milliseconds, or returns a message saying what is wrong.
 * Used where a bad value must become a validation issue rather than an exception.
 */
export function durationToMs(value: unknown): { ms: number } | { error: string } {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) return { error: `${value} is not a valid duration: ${DURATION_HINT}` };
    return { ms: Math.round(value * 1_000) };
  }
  if (typeof value !== 'string') return { error: `must be a duration, got ${describeType(value)}: ${DURATION_HINT}` };
  const text = value.trim();
  if (/^\d+(?:\.\d+)?$/.test(text)) return { ms: Math.round(Number(text) * 1_000) };
  if (!WHOLE.test(text)) return { error: `"${value}" is not a valid duration: ${DURATION_HINT}` };
  let ms = 0;
  for (const match of text.matchAll(PART)) ms += Number(match[1]) * UNIT_MS[match[2]];
  return { ms: Math.round(ms) };
}

/**
 * Parses `500ms`, `20s`, `5m`, `1h`, `1m30s` or a number of seconds to milliseconds.
 * @throws RangeError with a message that says how to write a duration.
 */
export function parseDuration(value: string | number): number {
  const parsed = durationToMs(value);
  if ('error' in parsed) throw new RangeError(parsed.error);
  return parsed.ms;
}

/** Renders milliseconds the way users write them (`1500ms`, `20s`, `5m`, `2h`), for messages. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}

/** Short type name for messages: `string`, `number`, `array`, `null`, `object`, ... */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
