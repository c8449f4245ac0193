/**
 * Code-point string helpers with JSONata's semantics (`$length`, `$substring` count Unicode code
 * points, a lone surrogate counting as one) that never build an array of characters: JSONata's own
 * versions do, which costs about 30 bytes of memory per character of the input.
 */

const SURROGATE = /[\uD800-\uDFFF]/;

function isPairAt(text: string, index: number): boolean {
  const high = text.charCodeAt(index);
  if (high < 0xd800 || high > 0xdbff || index + 1 >= text.length) return false;
  const low = text.charCodeAt(index + 1);
  return low >= 0xdc00 && low <= 0xdfff;
}

/** Number of code points, as `[...text].length` would say. */
export function codePointLength(text: string): number {
  if (!SURROGATE.test(text)) return text.length;
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    if (isPairAt(text, i)) i++;
    count++;
  }
  return count;
}

/** The UTF-16 offset `count` code points after `offset` (at most `text.length`). */
function advance(text: string, offset: number, count: number): number {
  let at = offset;
  for (let seen = 0; seen < count && at < text.length; seen++) at += isPairAt(text, at) ? 2 : 1;
  return at;
}

/** `Array.prototype.slice` index rules: truncated, negative from the end, clamped to [0, length]. */
function relative(value: number, length: number): number {
  const n = Number.isNaN(value) ? 0 : Math.trunc(value);
  return n < 0 ? Math.max(length + n, 0) : Math.min(n, length);
}

/** `[...text].slice(start, end).join('')` without the array. */
export function sliceCodePoints(text: string, start: number, end?: number): string {
  const length = codePointLength(text);
  const from = relative(start, length);
  const to = end === undefined ? length : relative(end, length);
  if (to <= from) return '';
  if (length === text.length) return text.slice(from, to);
  const startOffset = advance(text, 0, from);
  return text.slice(startOffset, advance(text, startOffset, to - from));
}

/** JSONata's `$substring(str, start, length?)`, on code points. */
export function substringCodePoints(text: string, start: number, length?: number): string {
  const total = codePointLength(text);
  const from = total + start < 0 ? 0 : start;
  if (length === undefined) return sliceCodePoints(text, from);
  if (length <= 0) return '';
  return sliceCodePoints(text, from, from >= 0 ? from + length : total + from + length);
}
