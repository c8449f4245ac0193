/** "Did you mean" hints for validation messages: cheap, and only when the match is close. */

/** Common shorthand that is rejected on purpose (definitions stay strict) but worth a hint. */
const ALIASES: Record<string, string> = { py: 'python', python3: 'python', ts: 'typescript', js: 'javascript', node: 'javascript' };

/**
 * Edit distance counting a swap of two neighbours as one edit (optimal string alignment), since
 * `dealy` for `delay` is the typical typo. Inputs are short identifiers: the table is tiny.
 */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i += 1) {
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1);
    }
  }
  return rows[a.length][b.length];
}

/**
 * Words and candidates longer than this are not compared (identifiers are at most 64
 * characters): an edit distance costs the product of the two lengths, and the word is user input.
 */
const MAX_WORD_CHARS = 64;
/** Edit distances computed per word at most, so a list of 10,000 node ids stays cheap to search. */
const MAX_COMPARED = 256;

/** How far apart a word and a candidate may be for a suggestion. */
const toleranceOf = (a: string, b: string) => Math.max(1, Math.floor(Math.max(a.length, b.length) / 3));

/** The candidate closest to `word`, if it is close enough to be a plausible typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  if (word.length > MAX_WORD_CHARS) return undefined;
  const lower = word.toLowerCase();
  const alias = ALIASES[lower];
  if (alias && candidates.includes(alias)) return alias;
  let best: { candidate: string; distance: number } | undefined;
  let compared = 0;
  for (const candidate of candidates) {
    // The distance is at least the difference in length: too far apart is skipped uncompared.
    if (candidate.length > MAX_WORD_CHARS || Math.abs(candidate.length - word.length) > toleranceOf(word, candidate)) continue;
    if (++compared > MAX_COMPARED) break;
    const distance = editDistance(lower, candidate.toLowerCase());
    if (!best || distance < best.distance) best = { candidate, distance };
  }
  // A distance equal to the length means nothing matched (`c` vs `a`): no suggestion.
  if (best && best.distance <= toleranceOf(word, best.candidate) && best.distance < Math.max(word.length, best.candidate.length)) return best.candidate;
  const prefix = candidates.find((c) => lower.length >= 3 && (c.toLowerCase().startsWith(lower) || lower.startsWith(c.toLowerCase())));
  return prefix;
}

/**
 * Hints one validation gives at most (`resetSuggestions` starts a validation, which runs
 * synchronously): each searches a list, and a definition can hold thousands of bad names.
 */
export const MAX_SUGGESTIONS = 20;
let suggestionsLeft = MAX_SUGGESTIONS;

export function resetSuggestions(): void {
  suggestionsLeft = MAX_SUGGESTIONS;
}

/** ` (did you mean "x"?)` or an empty string (also once this validation's hints are used up). */
export function didYouMean(word: string, candidates: readonly string[]): string {
  if (suggestionsLeft <= 0) return '';
  suggestionsLeft -= 1;
  const match = closest(word, candidates);
  return match && match !== word ? ` (did you mean "${match}"?)` : '';
}
