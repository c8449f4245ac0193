import { PodflowError } from '@podflow/protocol';

/** A Redis stream entry id, `<ms>-<seq>`, as SSE sends it in `id:` and clients return it in Last-Event-ID. */
const STREAM_ID = /^(\d{1,20})-(\d{1,20})$/;
/** Each part of a stream id is an unsigned 64-bit integer; Redis refuses anything larger ("Invalid stream ID"). */
const MAX_ID_PART = '18446744073709551615';

/** Whether `value` is an id Redis accepts: `<ms>-<seq>`, each part at most 2^64 − 1. */
export function isStreamId(value: string): boolean {
  const parts = STREAM_ID.exec(value);
  return parts !== null && compareDecimal(parts[1]!, MAX_ID_PART) <= 0 && compareDecimal(parts[2]!, MAX_ID_PART) <= 0;
}

/** Where a follower starts: after an entry id, or `$` (only what comes next). */
export type StreamPosition = string | '$';

/**
 * Validates a `Last-Event-ID` header: absent means from the beginning, `$` means only new events,
 * anything else must be an id this API sent (both parts within 64 bits). Whether the id is one of
 * the run's is RunEventsService's check.
 * @throws PodflowError BAD_REQUEST naming the header and the accepted forms.
 */
export function parseLastEventId(header: string | undefined): StreamPosition {
  if (header === undefined || header.trim() === '') return '0-0';
  const value = header.trim();
  if (value === '$' || value === '0' || isStreamId(value)) return value === '0' ? '0-0' : value;
  throw new PodflowError(
    'BAD_REQUEST',
    `Last-Event-ID "${value.slice(0, 64)}" is not an event id: send back the "id:" of the last event received (like 1700000000000-0), "$" for new events only, or no header to start from the beginning`,
  );
}

/** Orders two stream entry ids (`0-0` is the smallest). */
export function compareStreamIds(a: string, b: string): number {
  const [ams = '0', aseq = '0'] = a.split('-');
  const [bms = '0', bseq = '0'] = b.split('-');
  const byMs = compareDecimal(ams, bms);
  return byMs !== 0 ? byMs : compareDecimal(aseq, bseq);
}

/** Compares non-negative decimal strings of any length without losing precision. */
function compareDecimal(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, '');
  const y = b.replace(/^0+(?=\d)/, '');
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}
