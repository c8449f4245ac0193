import type { ExpressionBudget } from './expression-budget';

/**
 * `$match`, `$replace` and `$split` with a regex (or a custom matcher function), in one pass:
 * each match is taken once, and the budget (items, size, time) is checked before the result
 * grows by it. They used to count the matches first and then hand the pattern to JSONata's own
 * implementation, which ran every user regex twice. Semantics follow JSONata 2.x's functions of
 * the same names, including the one `next()` they ask for after the last match they keep.
 */

/**
 * Something JSONata can call as `f.apply(focus, args)`: a JavaScript function, or a JSONata
 * lambda object (a custom matcher's `next` is one), which has an `apply` of that shape.
 */
export interface Callable {
  apply(self: unknown, args: unknown[]): unknown;
}

/** What a matcher (a regex literal, or a function written to the same contract) returns. */
interface Match {
  match: string;
  start: number;
  end: number;
  groups: string[];
  next: Callable;
}

type Matcher = Callable;

/** Serialised size of one `$match` result object besides the matched text and groups. */
const MATCH_OBJECT_BYTES = 40;

/** JSONata's error for a matcher that returns something else than a match (T1010). */
function checkedMatch(result: unknown): Match | undefined {
  if (result === undefined || result === null) return undefined;
  const candidate = result as Partial<Match>;
  if (!(typeof candidate.start === 'number' || Array.isArray(candidate.groups) || typeof candidate.next === 'function')) {
    throw { code: 'T1010', stack: new Error().stack };
  }
  return candidate as Match;
}

/** As JSONata's evaluateMatcher: the matcher applied to the text, then each `next` to nothing. */
async function first(focus: unknown, matcher: Matcher, text: string): Promise<Match | undefined> {
  return checkedMatch(await matcher.apply(focus, [text]));
}

async function after(focus: unknown, match: Match): Promise<Match | undefined> {
  return checkedMatch(await match.next.apply(focus, [undefined]));
}

/** `$match(text, regex, limit?)`: `{ match, index, groups }` for each match, as a sequence. */
export async function matchAll(budget: ExpressionBudget, focus: unknown, sequence: unknown[], text: string, matcher: Matcher, limit: number | undefined): Promise<unknown[]> {
  if (limit !== undefined && !(limit > 0)) return sequence;
  let bytes = 2;
  let count = 0;
  for (let match = await first(focus, matcher, text); match !== undefined && (limit === undefined || count < limit); count++) {
    bytes += MATCH_OBJECT_BYTES + match.match.length + match.groups.reduce((sum, group) => sum + (group?.length ?? 0) + 3, 0);
    budget.requireItems(count + 1, '$match');
    budget.require(bytes, '$match');
    budget.checkTime('$match');
    sequence.push({ match: match.match, index: match.start, groups: match.groups });
    match = await after(focus, match);
  }
  return sequence;
}

/** `$split(text, regex, limit?)`: the pieces between matches. */
export async function splitByMatches(budget: ExpressionBudget, focus: unknown, text: string, matcher: Matcher, limit: number | undefined): Promise<string[]> {
  const pieces: string[] = [];
  if (limit !== undefined && !(limit > 0)) return pieces;
  let match = await first(focus, matcher, text);
  if (match === undefined) return [text];
  let start = 0;
  let bytes = 2;
  let count = 0;
  while (match !== undefined && (limit === undefined || count < limit)) {
    const piece = text.substring(start, match.start);
    bytes += piece.length + 3;
    budget.requireItems(count + 1, '$split');
    budget.require(bytes, '$split');
    budget.checkTime('$split');
    pieces.push(piece);
    start = match.end;
    match = await after(focus, match);
    count++;
  }
  if (limit === undefined || count < limit) pieces.push(text.substring(start));
  return pieces;
}

/**
 * `$replace(text, regex, replacement, limit?)`: the text with each match replaced by the
 * replacement string (`$0`, `$1`... stand for the match and its groups, `$$` for `$`) or by what
 * the replacement function returns for it (a string, else JSONata's D3012).
 */
export async function replaceMatches(
  budget: ExpressionBudget,
  focus: unknown,
  text: string,
  matcher: Matcher,
  replacement: string | Callable,
  limit: number | undefined,
): Promise<string> {
  if (limit !== undefined && !(limit > 0)) return text;
  let match = await first(focus, matcher, text);
  if (match === undefined) return text;
  let result = '';
  let position = 0;
  let count = 0;
  while (match !== undefined && (limit === undefined || count < limit)) {
    result += text.substring(position, match.start);
    const replaced = typeof replacement === 'string' ? substitute(replacement, match) : await replacement.apply(focus, [match]);
    if (typeof replaced !== 'string') throw { code: 'D3012', stack: new Error().stack, value: replaced };
    result += replaced;
    budget.requireItems(count + 1, '$replace');
    budget.require(result.length + 2, '$replace');
    budget.checkTime('$replace');
    position = match.start + match.match.length;
    count++;
    match = await after(focus, match);
  }
  return result + text.substring(position);
}

/** A replacement string with `$$`, `$0` and `$<n>` filled in from one match, as JSONata's `$replace` does. */
function substitute(replacement: string, match: Match): string {
  let out = '';
  let position = 0;
  for (let dollar = replacement.indexOf('$'); dollar !== -1 && position < replacement.length; dollar = replacement.indexOf('$', position)) {
    out += replacement.substring(position, dollar);
    position = dollar + 1;
    const next = replacement.charAt(position);
    if (next === '$') {
      out += '$';
      position++;
    } else if (next === '0') {
      out += match.match;
      position++;
    } else {
      // As many digits as the largest group number has, fewer if that names no group.
      const maxDigits = match.groups.length === 0 ? 1 : Math.floor(Math.log(match.groups.length) * Math.LOG10E) + 1;
      let index = parseInt(replacement.substring(position, position + maxDigits), 10);
      if (maxDigits > 1 && index > match.groups.length) index = parseInt(replacement.substring(position, position + maxDigits - 1), 10);
      if (Number.isNaN(index)) {
        out += '$';
      } else {
        if (match.groups.length > 0 && match.groups[index - 1] !== undefined) out += match.groups[index - 1];
        position += index.toString().length;
      }
    }
  }
  return out + replacement.substring(position);
}
