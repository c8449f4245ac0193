import type { Expression } from 'jsonata';
import { jsonata } from './jsonata-patched';
import { codePointLength, sliceCodePoints, substringCodePoints } from './code-points';
import { ExpressionLimitError, type ExpressionBudget } from './expression-budget';
import { mergeSort } from './merge-sort';
import { matchAll, replaceMatches, splitByMatches, type Callable } from './expression-regex-builtins';

/** A JSONata native function as the library represents it (what `$pad` evaluates to). */
interface NativeFunction {
  _jsonata_function: true;
  implementation: (this: Focus, ...args: never[]) => unknown;
  signature?: unknown;
}

/** What JSONata passes as `this` to a native function. */
interface Focus {
  environment: { timestamp?: Date | null };
  input: unknown;
  createSequence: (...items: unknown[]) => unknown[];
}

/** Name the `&` operator is rewritten to call (expressions.ts), so its operands are measured first. */
export const CONCAT_FUNCTION = '__podflow_concat';

/** Pictures are a few characters long, and formatting allocates per picture character. */
export const MAX_PICTURE_LENGTH = 1_000;

/** `$distinct` on structured values that cannot be keyed compares every pair: keep n² small. */
const MAX_PAIRWISE_DISTINCT = 2_000;

/** Built-ins that call a function argument: lambdas run there end in tail calls JSONata resolves outside any step hook. */
const HIGHER_ORDER = ['map', 'filter', 'single', 'reduce', 'sift', 'each', 'sort'] as const;
const WRAPPED = [
  'string', 'clone', 'join', 'pad', 'length', 'substring', 'replace', 'split', 'match', 'formatNumber', 'formatInteger', 'fromMillis', 'toMillis', 'distinct', 'spread',
  'encodeUrl', 'encodeUrlComponent', 'base64encode', 'zip',
  ...HIGHER_ORDER,
] as const;
type Wrapped = (typeof WRAPPED)[number];

let originals: Promise<Record<Wrapped, NativeFunction>> | undefined;

/** JSONata's own implementations, fetched once (a `$name` expression evaluates to the function). */
function loadOriginals(): Promise<Record<Wrapped, NativeFunction>> {
  originals ??= Promise.all(WRAPPED.map(async (name) => [name, (await jsonata(`$${name}`).evaluate(undefined)) as NativeFunction] as const)).then(
    (entries) => Object.fromEntries(entries) as Record<Wrapped, NativeFunction>,
  );
  return originals;
}

function checkPicture(name: string, picture: unknown): void {
  if (typeof picture === 'string' && picture.length > MAX_PICTURE_LENGTH) {
    throw new ExpressionLimitError(`$${name}: the picture string is ${picture.length} characters long; at most ${MAX_PICTURE_LENGTH} are allowed`);
  }
}

/** Occurrences of a plain string in `text` (no regex), counted without keeping them, stopping past `cap`. */
function countOccurrences(text: string, pattern: string, limit: number | undefined, cap: number): { count: number; matched: number } {
  const stop = Math.min(limit ?? Infinity, cap + 1);
  let count = 0;
  for (let at = text.indexOf(pattern); at !== -1 && count < stop; at = text.indexOf(pattern, at + pattern.length)) count++;
  return { count, matched: count * pattern.length };
}

/** ASCII characters `encodeURIComponent` keeps as they are; `encodeURI` keeps these and the URI's own punctuation. */
const KEPT_BY_URI_COMPONENT = new Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()");
const KEPT_BY_URI = new Set([...KEPT_BY_URI_COMPONENT, ...';,/?:@&=+$#']);

/** Length of `$encodeUrl`, `$encodeUrlComponent` or `$base64encode` of `text`, counted without building it. */
function encodedLength(name: 'encodeUrl' | 'encodeUrlComponent' | 'base64encode', text: string): number {
  // JSONata's encodes one byte per UTF-16 unit (btoa's Latin-1 view of the text).
  if (name === 'base64encode') return 4 * Math.ceil(text.length / 3);
  const kept = name === 'encodeUrl' ? KEPT_BY_URI : KEPT_BY_URI_COMPONENT;
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) length += kept.has(text[i]!) ? 1 : 3;
    else if (unit < 0x800) length += 6;
    else if (unit >= 0xd800 && unit <= 0xdbff) {
      // A surrogate pair: four UTF-8 bytes, each %XX.
      length += 12;
      i++;
    } else length += 9;
  }
  return length;
}

/** `JSON.stringify(value, null, 2)` size: the compact size plus newlines and indentation. */
function prettySize(budget: ExpressionBudget, value: unknown, depth = 0): number {
  if (typeof value !== 'object' || value === null) return budget.sizeOf(value);
  let size = budget.sizeOf(value);
  if (size === Infinity) return Infinity;
  const items = Array.isArray(value) ? value : Object.values(value);
  if (items.length === 0) return size;
  size += 1 + 2 * depth + (Array.isArray(value) ? 0 : items.length);
  for (const item of items) {
    size += 1 + 2 * (depth + 1) + (prettySize(budget, item, depth + 1) - budget.sizeOf(item));
    if (size > budget.limits.maxBytes) return Infinity;
  }
  return size;
}

/** A key equal for values JSONata's deep equality calls equal; undefined when a value holds a function. */
function canonicalKey(value: unknown): string | undefined {
  if (typeof value === 'function' || (typeof value === 'object' && value !== null && '_jsonata_lambda' in value)) return undefined;
  if (typeof value !== 'object' || value === null) return JSON.stringify(value) ?? 'undefined';
  const parts: string[] = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      const key = canonicalKey(item);
      if (key === undefined) return undefined;
      parts.push(key);
    }
    return `[${parts.join(',')}]`;
  }
  for (const name of Object.keys(value).sort()) {
    const key = canonicalKey((value as Record<string, unknown>)[name]);
    if (key === undefined) return undefined;
    parts.push(`${JSON.stringify(name)}:${key}`);
  }
  return `{${parts.join(',')}}`;
}

/**
 * Installs, on one compiled expression, bounded versions of the built-in functions that can build
 * a large value within a single evaluation step (where JSONata's own timeout and the step hook in
 * expressions.ts do not run): each checks the size it is about to produce against the budget
 * before allocating, then calls JSONata's implementation. `$length`, `$substring` and `$pad` are
 * re-implemented on code points without character arrays. `$eval` is not available: the code it
 * would run has not passed through these bounds.
 */
export async function installBoundedBuiltins(expression: Expression, budget: ExpressionBudget): Promise<void> {
  const original = await loadOriginals();
  const define = (name: string, implementation: (this: Focus, ...args: never[]) => unknown, from?: NativeFunction) => {
    expression.assign(name, { ...(from ?? { _jsonata_function: true }), implementation });
  };
  const call = (name: Wrapped, focus: Focus, args: unknown[]) => (original[name].implementation as (...a: unknown[]) => unknown).apply(focus, args);
  const size = (value: unknown) => budget.sizeOf(value);
  /**
   * A function argument whose every result is checked like a step's: a lambda body ending in a
   * call (`function($i) { $pad("", 1e6) }`) returns through JSONata's tail-call trampoline,
   * which no step hook sees, so `$map` would otherwise collect unmeasured results.
   */
  const checked = (fn: unknown, what: string): unknown => {
    if (typeof fn !== 'function') return fn;
    const inner = fn as ((...args: unknown[]) => unknown) & { arity?: number };
    const wrapper = async function (this: unknown, ...args: unknown[]) {
      const result = await inner.apply(this, args);
      budget.checkBuilt(result, what);
      return result;
    };
    // JSONata passes a function as many arguments as its arity says.
    return Object.assign(wrapper, { arity: typeof inner.arity === 'number' ? inner.arity : inner.length });
  };

  define(
    'string',
    function (this: Focus, value: unknown, prettify?: boolean) {
      if (value !== undefined && typeof value !== 'string') budget.require(prettify ? prettySize(budget, value) : size(value), '$string');
      return call('string', this, [value, prettify]);
    },
    original.string,
  );
  define(
    'clone',
    function (this: Focus, value: unknown) {
      budget.require(size(value), '$clone');
      return call('clone', this, [value]);
    },
    original.clone,
  );
  define(
    'join',
    function (this: Focus, strings: unknown, separator?: string) {
      if (Array.isArray(strings)) {
        let total = 2 + (separator ?? '').length * Math.max(0, strings.length - 1);
        for (const item of strings) total += typeof item === 'string' ? item.length : 0;
        budget.require(total, `$join of ${strings.length} strings`);
      }
      return call('join', this, [strings, separator]);
    },
    original.join,
  );
  define('length', (text: string | undefined) => (text === undefined ? undefined : codePointLength(text)), original.length);
  define(
    'substring',
    (text: string | undefined, start: number, length?: number) => (text === undefined ? undefined : substringCodePoints(text, start, length)),
    original.substring,
  );
  define(
    'pad',
    (text: string | undefined, width: number, char?: string) => {
      if (text === undefined) return undefined;
      const fill = char === undefined || char.length === 0 ? ' ' : char;
      const target = Math.abs(Math.trunc(width));
      const missing = target - codePointLength(text);
      if (!(missing > 0)) return text;
      const fillPoints = codePointLength(fill);
      budget.require(text.length + 2 + missing * Math.ceil(fill.length / fillPoints), `$pad to a width of ${target}`);
      const padding = sliceCodePoints(fill.repeat(Math.ceil(missing / fillPoints)), 0, missing);
      return width > 0 ? text + padding : padding + text;
    },
    original.pad,
  );
  define(
    'replace',
    async function (this: Focus, text: string | undefined, pattern: unknown, replacement: unknown, limit?: number) {
      const bounded = checked(replacement, 'the $replace function') as string | Callable;
      if (text !== undefined && typeof pattern === 'function' && !(limit! < 0)) return replaceMatches(budget, this, text, pattern as Callable, bounded, limit);
      if (text !== undefined && typeof pattern === 'string' && pattern !== '' && (limit === undefined || limit > 0)) {
        const found = countOccurrences(text, pattern, limit, budget.maxItems);
        budget.requireItems(found.count, '$replace');
        if (typeof replacement === 'string') budget.require(text.length + 2 + found.count * replacement.length - found.matched, '$replace');
      }
      return call('replace', this, [text, pattern, bounded, limit]);
    },
    original.replace,
  );
  define(
    'split',
    async function (this: Focus, text: string | undefined, separator: unknown, limit?: number) {
      if (text !== undefined && typeof separator === 'function' && !(limit! < 0)) return splitByMatches(budget, this, text, separator as Callable, limit);
      if (text !== undefined && typeof separator === 'string') {
        const found = separator === '' ? { count: text.length - 1, matched: 0 } : countOccurrences(text, separator, undefined, budget.maxItems);
        const pieces = Math.min(found.count + 1, limit ?? Infinity);
        budget.requireItems(pieces, '$split');
        budget.require(text.length + 3 * pieces, '$split');
      }
      return call('split', this, [text, separator, limit]);
    },
    original.split,
  );
  define(
    'match',
    async function (this: Focus, text: string | undefined, pattern: unknown, limit?: number) {
      if (text !== undefined && typeof pattern === 'function' && !(limit! < 0)) return matchAll(budget, this, this.createSequence(), text, pattern as Callable, limit);
      return call('match', this, [text, pattern, limit]);
    },
    original.match,
  );
  define(
    'distinct',
    function (this: Focus, values: unknown) {
      if (!Array.isArray(values) || values.length <= 1) return call('distinct', this, [values]);
      budget.require(size(values), '$distinct');
      // Keyed in one pass; JSONata's own compares every pair, O(n²) in a single step.
      const seen = new Set<string>();
      const result = (values as { sequence?: boolean }).sequence ? this.createSequence() : [];
      for (const value of values) {
        const key = canonicalKey(value);
        if (key === undefined) {
          if (values.length > MAX_PAIRWISE_DISTINCT) {
            throw new ExpressionLimitError(`$distinct over ${values.length} values that hold functions; at most ${MAX_PAIRWISE_DISTINCT} can be compared`);
          }
          return call('distinct', this, [values]);
        }
        if (!seen.has(key)) {
          seen.add(key);
          result.push(value);
        }
      }
      return result;
    },
    original.distinct,
  );
  define(
    'spread',
    function (this: Focus, value: unknown) {
      // JSONata's appends each item's part to the result with concat: quadratic (100,000 items
      // held the event loop 21 s in one step). The same result, gathered in one array: a plain one
      // (not a sequence) once anything was appended, as concat leaves it.
      const spread = (arg: unknown): unknown => {
        if (!Array.isArray(arg)) return call('spread', this, [arg]);
        let result: unknown[] = this.createSequence();
        let appended = false;
        for (const item of arg) {
          const part = spread(item);
          if (part === undefined) continue;
          if (!appended) {
            result = [...result];
            appended = true;
          }
          if (Array.isArray(part)) for (const entry of part) result.push(entry);
          else result.push(part);
          budget.requireItems(result.length, '$spread');
        }
        return result;
      };
      return spread(value);
    },
    original.spread,
  );
  // Measured before they build: they allocate their whole result in one step (60 × an 8 MB
  // $encodeUrlComponent at once took 4.4 GB before any result was measured).
  for (const name of ['encodeUrl', 'encodeUrlComponent', 'base64encode'] as const) {
    define(
      name,
      function (this: Focus, text: unknown) {
        if (typeof text === 'string') budget.require(encodedLength(name, text) + 2, `$${name}`);
        return call(name, this, [text]);
      },
      original[name],
    );
  }
  define(
    'zip',
    function (this: Focus, ...lists: unknown[]) {
      // The result holds the same items as its inputs, regrouped, and one array per tuple (about
      // as much memory as 8 items: $zip([1..1000000]) took 140 MB for a 4 MB input).
      budget.require(lists.reduce<number>((sum, list) => sum + size(list), 0), '$zip');
      const tuples = Math.min(...lists.map((list) => (Array.isArray(list) ? list.length : 0)));
      if (lists.length > 0) budget.requireItems(tuples * (8 + lists.length), `$zip into ${tuples} tuples of ${lists.length}`);
      return call('zip', this, lists);
    },
    original.zip,
  );
  for (const name of HIGHER_ORDER) {
    if (name === 'sort') continue;
    define(name, function (this: Focus, ...args: unknown[]) {
      return call(name, this, args.map((arg) => checked(arg, `the function given to $${name}`)));
    }, original[name]);
  }
  define(
    'sort',
    async function (this: Focus, items: unknown, comparator?: unknown) {
      if (!Array.isArray(items) || items.length <= 1) return items;
      const plain = comparator === undefined;
      // JSONata's own error (D3070) for what its default order cannot compare.
      if (plain && !items.every((item) => typeof item === 'number') && !items.every((item) => typeof item === 'string')) return call('sort', this, [items]);
      budget.requireItems(items.length, '$sort');
      if (plain) return [...(items as Array<number | string>)].sort((a, b) => (a > b ? 1 : a < b ? -1 : 0));
      return mergeSort(items, checked(comparator, 'the function given to $sort') as (a: unknown, b: unknown) => unknown, () => budget.checkTime('$sort'));
    },
    original.sort,
  );
  for (const name of ['formatNumber', 'formatInteger', 'fromMillis', 'toMillis'] as const) {
    define(
      name,
      function (this: Focus, ...args: unknown[]) {
        checkPicture(name, args[1]);
        if (name === 'formatNumber' && typeof args[2] === 'object' && args[2] !== null) {
          for (const option of Object.values(args[2])) checkPicture(name, option);
        }
        return call(name, this, args);
      },
      original[name],
    );
  }
  // `$now` is bound per compiled expression, to that evaluation's timestamp: same result, bounded picture.
  define('now', function (this: Focus, picture?: string, timezone?: string) {
    checkPicture('now', picture);
    return call('fromMillis', this, [(this.environment.timestamp ?? new Date()).getTime(), picture, timezone]);
  });
  define('eval', () => {
    throw new Error('$eval is not available in podflow expressions: write the expression itself in the definition');
  });
  define(CONCAT_FUNCTION, function (this: Focus, left: unknown, right: unknown) {
    const text = (value: unknown): string => {
      if (value === undefined) return '';
      if (typeof value === 'string') return value;
      budget.require(size(value), 'the & operator');
      return call('string', this, [value]) as string;
    };
    return text(left).concat(text(right));
  });
}
