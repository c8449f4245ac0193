/**
 * Accepted npm specs: `name` or `@scope/name`, optionally `@<range>` where range is a semver range
 * (node-semver grammar: `1.11.13`, `^1.2`, `~1`, `>=1 <2`, `1.x`, `*`, `1 - 2`, `1 || 2`) or a
 * dist-tag (`latest`). Names follow npm's rules for new packages: lowercase, URL-safe characters,
 * not starting with `.` or `_`.
 *
 * Canonical form: `<name>` or `<name>@<range>`, the name as written (npm names are case-sensitive
 * and must already be lowercase), the range with whitespace normalised: no space between an
 * operator and its version, one space between comparators, ` - ` in hyphen ranges, ` || ` between
 * alternatives, a leading `v` or `=` on a version dropped. Dist-tags are kept as written.
 */

/** The grammar refused the spec; dependencies.ts turns this into a message naming it. */
export interface NpmGrammarFailure {
  kind: 'syntax';
  what: string;
  fix?: string;
}

const NAME_PART = /^[a-z0-9-][a-z0-9._-]*$/;
const RESERVED_NAMES = new Set(['node_modules', 'favicon.ico']);
const NUMBER = '(?:[xX*]|0|[1-9]\\d*)';
const IDENTIFIERS = '[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*';
/** A full or partial version: `1`, `1.2`, `1.x`, `1.2.3-rc.1+build.5`. */
const PARTIAL = new RegExp(`^${NUMBER}(?:\\.${NUMBER}(?:\\.${NUMBER}(?:-${IDENTIFIERS})?(?:\\+${IDENTIFIERS})?)?)?$`);
const COMPARATOR = /^(<=|>=|<|>|~>|~|\^)?\s*[v=]?\s*(\S+)$/;
const DIST_TAG = /^[A-Za-z][A-Za-z0-9._-]{0,63}$/;
const RANGE_HINT = 'use a version, a semver range or a dist-tag, e.g. "dayjs@1.11.13", "dayjs@^1.11", "dayjs@>=1 <2" or "dayjs@latest"';

function syntax(what: string, fix?: string): NpmGrammarFailure {
  return { kind: 'syntax', what, ...(fix ? { fix } : {}) };
}

function checkName(name: string): NpmGrammarFailure | undefined {
  const scoped = /^@([^/]*)\/([^/]*)$/.exec(name);
  const parts = scoped ? [scoped[1]!, scoped[2]!] : [name];
  if (name.startsWith('@') && !scoped) return syntax('is not a valid npm package name', 'a scoped name is "@scope/name", e.g. "@types/node"');
  if (name.toLowerCase() !== name && parts.every((part) => NAME_PART.test(part.toLowerCase()))) {
    return syntax('has upper-case letters in its name', `npm package names are lowercase, e.g. ${JSON.stringify(name.toLowerCase())}`);
  }
  const bad = parts.find((part) => !NAME_PART.test(part));
  if (bad !== undefined) {
    return syntax(
      `is not a valid npm package name (${JSON.stringify(bad)})`,
      'names use lowercase letters, digits, "-", "." and "_", do not start with "." or "_", and may have an "@scope/" prefix',
    );
  }
  if (RESERVED_NAMES.has(parts[parts.length - 1]!)) return syntax(`uses the reserved name ${JSON.stringify(name)}`);
  return undefined;
}

/** One range (no `||`) in canonical form, or undefined when it is not semver. */
function canonicalRange(range: string): string | undefined {
  const hyphen = /^(\S+)\s+-\s+(\S+)$/.exec(range);
  if (hyphen) {
    const [from, to] = [hyphen[1]!.replace(/^[v=]/, ''), hyphen[2]!.replace(/^[v=]/, '')];
    return PARTIAL.test(from) && PARTIAL.test(to) ? `${from} - ${to}` : undefined;
  }
  // Join operators written apart from their version (`>= 1.2`) before splitting comparators.
  const words = range.replace(/(<=|>=|<|>|=|~>|~|\^)\s+/g, '$1').split(/\s+/);
  const comparators: string[] = [];
  for (const word of words) {
    const match = COMPARATOR.exec(word);
    if (!match || !PARTIAL.test(match[2]!)) return undefined;
    comparators.push(`${match[1] ?? ''}${match[2]}`);
  }
  return comparators.join(' ');
}

function parseRange(text: string): string | NpmGrammarFailure {
  if (text === '') return syntax('has nothing after "@"', `add a version or range, or drop the "@"; ${RANGE_HINT}`);
  const alternatives = text.split('||').map((part) => part.trim());
  if (alternatives.length === 1 && DIST_TAG.test(text) && !PARTIAL.test(text) && !/^v\d/.test(text)) return text;
  const canonical: string[] = [];
  for (const alternative of alternatives) {
    if (alternative === '') return syntax('has an empty alternative around "||"', RANGE_HINT);
    const range = canonicalRange(alternative);
    if (range === undefined) return syntax(`has ${JSON.stringify(text)}, which is neither a semver range nor a dist-tag`, RANGE_HINT);
    canonical.push(range);
  }
  return canonical.join(' || ');
}

/** Parses a spec that already passed the shell/option/URL checks. */
export function parseNpmSpec(text: string): { name: string; spec: string } | NpmGrammarFailure {
  const at = text.indexOf('@', text.startsWith('@') ? 1 : 0);
  const name = (at < 0 ? text : text.slice(0, at)).trim();
  const nameProblem = checkName(name);
  if (nameProblem) return nameProblem;
  if (at < 0) return { name, spec: name };
  const range = parseRange(text.slice(at + 1).trim());
  if (typeof range !== 'string') return range;
  return { name, spec: `${name}@${range}` };
}
