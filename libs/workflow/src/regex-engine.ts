import { RE2JS } from 're2js';

/**
 * Where RE2's syntax differs from JavaScript's, said once for every message (README "Expression
 * limits").
 */
const RE2_NOTE = 'podflow matches regular expressions with RE2, in time linear in the text: backreferences (\\1, \\k<name>) and lookaround ((?=, (?!, (?<=, (?<!) do not exist there';

/** Longest pattern accepted; its RE2 program grows with it. */
export const MAX_PATTERN_LENGTH = 10_000;

/** Patterns compiled per source and flags; an expression is compiled per evaluation, its regexes need not be. */
const MAX_CACHED = 1_000;
const compiled = new Map<string, RE2JS>();

/** A regular expression RE2 cannot run: the pattern, RE2's reason and what to do. */
export class UnsupportedRegexError extends Error {
  constructor(source: string, reason: string) {
    super(`regular expression /${source.slice(0, 200)}/ is not supported: ${reason}; ${RE2_NOTE}`);
    this.name = 'UnsupportedRegexError';
  }
}

function compile(source: string, flags: string): RE2JS {
  const key = `${flags}/${source}`;
  const cached = compiled.get(key);
  if (cached) return cached;
  if (source.length > MAX_PATTERN_LENGTH) throw new UnsupportedRegexError(source, `it is ${source.length} characters long; at most ${MAX_PATTERN_LENGTH} are allowed`);
  // RE2JS's translation turns `\k<name>` into the literal "k<name>": refused here, not silently changed.
  if (hasNamedBackreference(source)) throw new UnsupportedRegexError(source, 'it has a named backreference (\\k<name>)');
  let pattern: RE2JS;
  try {
    pattern = RE2JS.compile(RE2JS.translateRegExp(source), (flags.includes('i') ? RE2JS.CASE_INSENSITIVE : 0) | (flags.includes('m') ? RE2JS.MULTILINE : 0));
  } catch (error) {
    throw new UnsupportedRegexError(source, (error as Error).message);
  }
  if (compiled.size >= MAX_CACHED) compiled.delete(compiled.keys().next().value!);
  compiled.set(key, pattern);
  return pattern;
}

/** What one evaluation allows its regular expressions. */
export interface RegexBounds {
  /**
   * Most work of one match attempt, in RE2 program instructions × characters scanned: RE2 runs
   * in time linear in the text, but by a factor of the pattern's program size (`[ab]{999}$` on a
   * million characters takes 30 s in RE2JS), and one attempt cannot be interrupted.
   */
  maxWork: number;
  /** Throws once the evaluation is past its time limit; called before every match attempt. */
  checkTime: (what: string) => void;
  /** Makes the error of an attempt over `maxWork` (an ExpressionLimitError, so it names the limit). */
  tooMuchWork: (message: string) => Error;
}

/**
 * The regular expression engine JSONata runs (its `RegexEngine` option) for one evaluation: the
 * part of RegExp it uses (`exec` with `lastIndex` under the `g` flag JSONata always sets), on
 * RE2JS, a pure JavaScript port of RE2. JavaScript's engine backtracks, so `/(a+)+$/` on 30
 * characters ran for minutes inside one evaluation step, where the expression timeout cannot
 * interrupt it; RE2 runs in time linear in the text, and each attempt is bounded (RegexBounds).
 * Indices are UTF-16 offsets, as with RegExp; `.` matches a whole character (a surrogate pair),
 * as with RegExp's `u` flag.
 * @throws UnsupportedRegexError for syntax RE2 does not have (backreferences, lookaround).
 */
export function regexEngine(bounds: RegexBounds): RegExpConstructor {
  class LinearRegExp {
    lastIndex = 0;
    readonly source: string;
    readonly flags: string;
    readonly global: boolean;
    private readonly pattern: RE2JS;
    private matcherOf?: { text: string; matcher: ReturnType<RE2JS['matcher']> };

    constructor(source: RegExp | string, flags?: string) {
      this.source = typeof source === 'string' ? source : source.source;
      this.flags = flags ?? (typeof source === 'string' ? '' : source.flags);
      this.global = this.flags.includes('g');
      this.pattern = compile(this.source, this.flags);
    }

    exec(text: string): RegExpExecArray | null {
      const from = this.global ? this.lastIndex : 0;
      if (from > text.length) {
        this.lastIndex = 0;
        return null;
      }
      const what = `regular expression /${this.source.slice(0, 100)}/`;
      bounds.checkTime(what);
      const work = this.pattern.programSize() * (text.length - from);
      if (work > bounds.maxWork) {
        throw bounds.tooMuchWork(
          `${what} would scan ${text.length - from} characters with an RE2 program of ${this.pattern.programSize()} instructions, ${work} units of work; the limit is ${bounds.maxWork} per match attempt (EXPRESSION_TIMEOUT_MS × ${WORK_PER_MS}): use a simpler pattern or match a shorter text`,
        );
      }
      // One matcher per text: JSONata calls exec once per match, moving lastIndex along.
      if (this.matcherOf?.text !== text) this.matcherOf = { text, matcher: this.pattern.matcher(text) };
      const { matcher } = this.matcherOf;
      if (!matcher.find(from)) {
        if (this.global) this.lastIndex = 0;
        return null;
      }
      const found: string[] = [matcher.group(0) ?? ''];
      for (let group = 1; group <= matcher.groupCount(); group++) found.push(matcher.group(group) ?? (undefined as unknown as string));
      const result = Object.assign(found, { index: matcher.start(), input: text, groups: undefined }) as RegExpExecArray;
      if (this.global) this.lastIndex = matcher.end();
      return result;
    }

    test(text: string): boolean {
      return this.exec(text) !== null;
    }

    toString(): string {
      return `/${this.source}/${this.flags}`;
    }
  }
  return LinearRegExp as unknown as RegExpConstructor;
}

/**
 * Units of regex work (RegexBounds.maxWork) allowed per millisecond of EXPRESSION_TIMEOUT_MS:
 * RE2JS's slowest measured case does about 25 units per microsecond, so one attempt stays within
 * about 1.3 times the timeout, and common patterns within a tenth of it.
 */
export const WORK_PER_MS = 32_768;

/** Whether `source` holds `\k<` outside an escape (`\\k<` is a backslash and a literal k). */
function hasNamedBackreference(source: string): boolean {
  for (let at = 0; at < source.length; at++) {
    if (source[at] !== '\\') continue;
    if (source[at + 1] === 'k' && source[at + 2] === '<') return true;
    at++; // skip the escaped character
  }
  return false;
}

/** Why RE2 cannot run `regex`, or undefined when it can (for checking definitions before any run). */
export function unsupportedRegex(regex: RegExp): string | undefined {
  try {
    compile(regex.source, regex.flags);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}
