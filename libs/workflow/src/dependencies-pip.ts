/**
 * The accepted subset of PEP 508 requirement specs: `name`, optional `[extra,...]`, optional
 * comma-separated version specifiers. No markers, no direct references (refused earlier, with
 * their own messages, by dependencies.ts).
 *
 * Canonical form (what `str(packaging.requirements.Requirement)` prints, with a PEP 503 name):
 * `<name>[<extras sorted, comma-joined>]<specifiers sorted, comma-joined>`, no whitespace, e.g.
 * ` Python_Dateutil >= 2.8 , <3` → `python-dateutil<3,>=2.8`. Names and extras are lowercased with
 * runs of `-_.` turned into `-`; versions are lowercased (PEP 440 versions are case-insensitive)
 * except after `===`, which compares text; repeated specifiers collapse.
 */

/** The grammar refused the spec; dependencies.ts turns this into a message naming it. */
export interface PipGrammarFailure {
  kind: 'syntax';
  what: string;
  fix?: string;
}

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?/;
const FULL_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const SPECIFIER = /^(===|~=|==|!=|<=|>=|<|>)\s*(\S+)$/;
/** PEP 440 public + local version (the regex of `packaging.version`), optional leading `v`. */
const PEP440 =
  /^v?(?:\d+!)?\d+(?:\.\d+)*(?:[-_.]?(?:alpha|a|beta|b|preview|pre|c|rc)[-_.]?\d*)?(?:-\d+|[-_.]?(?:post|rev|r)[-_.]?\d*)?(?:[-_.]?dev[-_.]?\d*)?(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$/i;
/** A release prefix for `==1.2.*` / `!=1.*`. */
const PEP440_PREFIX = /^v?(?:\d+!)?\d+(?:\.\d+)*$/i;
/** Text allowed after `===` (arbitrary equality). */
const ARBITRARY = /^[A-Za-z0-9.*+!_-]+$/;

/** PEP 503: lowercase, runs of `-`, `_` and `.` become one `-`. */
export function normalisePipName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

function syntax(what: string, fix?: string): PipGrammarFailure {
  return { kind: 'syntax', what, ...(fix ? { fix } : {}) };
}

function parseExtras(list: string): string[] | PipGrammarFailure {
  const extras = new Set<string>();
  for (const part of list.split(',')) {
    const extra = part.trim();
    if (extra === '' && list.trim() === '') break;
    if (!FULL_NAME.test(extra)) return syntax(`has an invalid extra ${JSON.stringify(extra)}`, 'extras are names such as "socks" in "requests[socks]"');
    extras.add(normalisePipName(extra));
  }
  return [...extras].sort();
}

function parseSpecifier(name: string, clause: string): string | PipGrammarFailure {
  const fix = 'use == != <= >= < > ~= or === followed by a version, e.g. "tabulate==0.9.0" or "requests>=2,<3"';
  if (clause === '') return syntax('has an empty version clause (two commas, or a trailing comma)', fix);
  const match = SPECIFIER.exec(clause);
  if (!match) {
    if (/^=\s*[^=]/.test(clause)) return syntax(`uses "=" in ${JSON.stringify(clause)}`, `use "==" for an exact version, e.g. ${JSON.stringify(`${name}==${clause.replace(/^=\s*/, '')}`)}`);
    if (/^v?\d/.test(clause)) return syntax(`has a version without an operator (${JSON.stringify(clause)})`, `e.g. ${JSON.stringify(`${name}==${clause}`)}`);
    return syntax(`has ${JSON.stringify(clause)} where a version specifier should be`, fix);
  }
  const [, operator, version] = match as unknown as [string, string, string];
  if (operator === '===') return ARBITRARY.test(version) ? `===${version}` : syntax(`has an invalid version ${JSON.stringify(version)} after "==="`, fix);
  if (version.endsWith('.*')) {
    if (operator !== '==' && operator !== '!=') return syntax(`uses a wildcard with "${operator}"`, 'a trailing ".*" only works with == and !=, e.g. "django==4.2.*"');
    const prefix = version.slice(0, -2);
    return PEP440_PREFIX.test(prefix) ? `${operator}${version.toLowerCase()}` : syntax(`has an invalid version prefix ${JSON.stringify(version)}`, fix);
  }
  if (!PEP440.test(version)) return syntax(`has ${JSON.stringify(version)}, which is not a PEP 440 version`, `versions look like 1.2, 2.0.1, 1.0rc1 or 2.1.post1; ${fix}`);
  if (operator === '~=' && !/^v?(?:\d+!)?\d+\.\d+/i.test(version)) {
    return syntax(`uses "~=" with a single-number version (${JSON.stringify(version)})`, `give at least two numbers, e.g. ${JSON.stringify(`${name}~=${version}.0`)}`);
  }
  return `${operator}${version.toLowerCase()}`;
}

/** Parses a spec that already passed the shell/option/URL checks. */
export function parsePipSpec(text: string): { name: string; spec: string } | PipGrammarFailure {
  const nameMatch = NAME.exec(text);
  if (!nameMatch) return syntax('does not start with a package name');
  const name = normalisePipName(nameMatch[0]);
  let rest = text.slice(nameMatch[0].length).trimStart();
  let extras: string[] = [];
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) return syntax('has an unclosed "[" (extras list)', 'e.g. "requests[socks]>=2"');
    const parsed = parseExtras(rest.slice(1, close));
    if (!Array.isArray(parsed)) return parsed;
    extras = parsed;
    rest = rest.slice(close + 1).trim();
  }
  const specifiers = new Set<string>();
  if (rest !== '') {
    for (const clause of rest.split(',')) {
      const specifier = parseSpecifier(name, clause.trim());
      if (typeof specifier !== 'string') return specifier;
      specifiers.add(specifier);
    }
  }
  const extrasText = extras.length > 0 ? `[${extras.join(',')}]` : '';
  return { name, spec: `${name}${extrasText}${[...specifiers].sort().join(',')}` };
}
