import { PodflowError, type Language } from '@podflow/protocol';
import { parseNpmSpec } from './dependencies-npm';
import { parsePipSpec } from './dependencies-pip';

/**
 * Declared dependencies of Code nodes: pip requirement specs (Python) and npm specs
 * (TypeScript/JavaScript). Only plain registry packages are accepted: a spec reaches an installer
 * as one argv element, so anything that could make the installer fetch from elsewhere (URLs, VCS
 * refs, paths, aliases) or change how it runs (options, shell text) is refused before a run starts.
 */

/** Package registry a spec resolves against. */
export type DependencyEcosystem = 'pypi' | 'npm';

/** Longest spec accepted, in characters (every real spec is far shorter). */
export const MAX_DEPENDENCY_SPEC_LENGTH = 200;

/** A valid spec, normalised. */
export interface ParsedDependency {
  ecosystem: DependencyEcosystem;
  /** Normalised package name: PEP 503 for PyPI (`python-dateutil`), as written for npm (`@types/node`). */
  name: string;
  /** Canonical text handed to the installer, e.g. `python-dateutil<3,>=2.8` or `dayjs@^1.11`. */
  spec: string;
  /** The spec as declared. */
  raw: string;
}

/** What is wrong with a spec (or, for `denied` / `not_allowed`, which policy refused it). */
export type DependencyProblemKind =
  | 'empty'
  | 'too_long'
  | 'shell'
  | 'option'
  | 'url'
  | 'vcs'
  | 'path'
  | 'alias'
  | 'marker'
  | 'direct_reference'
  | 'syntax'
  | 'duplicate'
  | 'denied'
  | 'not_allowed';

export interface DependencyProblem {
  kind: DependencyProblemKind;
  /** The spec as declared. */
  spec: string;
  /** Names the spec (JSON-quoted), says what is wrong and how to fix it. */
  message: string;
}

export type DependencyParseResult = { ok: true; dependency: ParsedDependency } | { ok: false; problem: DependencyProblem };

/** A spec whose problem was found in the ecosystem grammar: the kind and the sentence after the quoted spec. */
export interface SpecFailure {
  kind: DependencyProblemKind;
  /** e.g. `is a URL: only packages from the index can be installed`. */
  what: string;
  /** Replaces the generic "write a plain package name" advice when there is a better one. */
  fix?: string;
}

/** Which registry a node's dependencies come from. */
export function ecosystemOf(language: Language): DependencyEcosystem {
  return language === 'python' ? 'pypi' : 'npm';
}

const FIX: Record<DependencyEcosystem, string> = {
  pypi: 'write a plain package name with an optional version, e.g. "tabulate==0.9.0"',
  npm: 'write a plain package name with an optional version or range, e.g. "dayjs@1.11.13"',
};

/** The spec, JSON-quoted and shortened so that a 10 kB paste does not flood an error message. */
export function quoteSpec(raw: string): string {
  return JSON.stringify(raw.length > 80 ? `${raw.slice(0, 77)}...` : raw);
}

function failure(ecosystem: DependencyEcosystem, raw: string, found: SpecFailure): DependencyParseResult {
  return { ok: false, problem: { kind: found.kind, spec: raw, message: `${quoteSpec(raw)} ${found.what}: ${found.fix ?? FIX[ecosystem]}` } };
}

/** Environment-marker variables of PEP 508, to tell `name; python_version < "3.9"` from shell text. */
const MARKER_VARIABLES = /^\s*\(?\s*(?:python_version|python_full_version|os_name|sys_platform|platform_release|platform_system|platform_version|platform_machine|platform_python_implementation|implementation_name|implementation_version|extra)\b/;
/** Characters a shell would interpret. `<`, `>` and `|` are version operators too: see shellProblem. */
const SHELL_CHARACTERS = /[;&$`(){}'"\\]/;
/** The first control character (tab excepted: it is whitespace), e.g. a line break or NUL. */
function controlCharacter(text: string): string | undefined {
  for (const char of text) {
    const code = char.charCodeAt(0);
    if ((code < 0x20 && char !== '\t') || code === 0x7f) return char;
  }
  return undefined;
}

function describeCharacter(char: string): string {
  if (char === '\n' || char === '\r') return 'a line break';
  if (char === '\u0000') return 'a NUL byte';
  if (controlCharacter(char)) return `the control character U+${char.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}`;
  return JSON.stringify(char);
}

/**
 * Shell text: metacharacters, control characters, redirections, and pipes. `<`/`>` are only
 * refused where they cannot be a version operator (`> /tmp/x`, `<<`), and `||` only inside an npm
 * version range, where it means "or".
 */
function shellProblem(ecosystem: DependencyEcosystem, text: string): SpecFailure | undefined {
  const meta = SHELL_CHARACTERS.exec(text);
  const redirect = /[<>]\s*[/~&|]|<<|>>|<>|></.exec(text);
  const rangeStart = ecosystem === 'npm' ? text.indexOf('@', text.startsWith('@') ? 1 : 0) : -1;
  const pipes = (rangeStart >= 0 ? `${text.slice(0, rangeStart)}${text.slice(rangeStart).replace(/\|\|/g, '')}` : text).indexOf('|');
  const found = controlCharacter(text) ?? meta?.[0] ?? redirect?.[0] ?? (pipes >= 0 ? '|' : undefined);
  if (found === undefined) return undefined;
  return { kind: 'shell', what: `contains shell syntax (${describeCharacter(found[0]!)})`, fix: `declare one package per entry, with no shell text; ${FIX[ecosystem]}` };
}

/** A whitespace-separated word starting with `-` (a lone `-` is an npm hyphen range). */
function optionProblem(ecosystem: DependencyEcosystem, text: string): SpecFailure | undefined {
  const option = text.split(/\s+/).find((word) => word.startsWith('-') && word !== '-');
  if (option === undefined) return undefined;
  return { kind: 'option', what: `is an installer option (${JSON.stringify(option.split('=')[0])})`, fix: `installer options cannot be set from a workflow; ${FIX[ecosystem]}` };
}

/** URLs, VCS references, aliases, paths and archives, recognised before the grammar so the message says which. */
function locatorProblem(ecosystem: DependencyEcosystem, text: string): SpecFailure | undefined {
  const index = ecosystem === 'pypi' ? 'PyPI' : 'the npm registry';
  const only = `only packages from ${index} can be installed`;
  if (/^(?:git|hg|svn|bzr)\+|^git:\/\/|^git@[^:]+:|^ssh:\/\/git@/i.test(text)) return { kind: 'vcs', what: `is a VCS reference: ${only}` };
  if (/^(?:github|gitlab|bitbucket|gist):/i.test(text)) return { kind: 'vcs', what: `is a hosted git repository reference: ${only}` };
  if (/^file:/i.test(text)) return { kind: 'path', what: `is a local path (a file: URL): ${only}` };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    if (/\.git(?:[#?/@]|$)/i.test(text)) return { kind: 'vcs', what: `is a git repository URL: ${only}` };
    return { kind: 'url', what: `is a URL: ${only}` };
  }
  if (/^npm:/i.test(text)) return { kind: 'alias', what: `is an npm alias: install the package under its own name` };
  if (/^(?:link|workspace|portal|patch):/i.test(text)) return { kind: 'path', what: `is a local package reference (${text.split(':')[0]}:): ${only}` };
  if (/^(?:\.{1,2}|~)(?:[/\\]|$)|^\/|^[A-Za-z]:[/\\]/.test(text)) return { kind: 'path', what: `is a local path: ${only}` };
  if (/\.(?:tgz|tar|tar\.gz|tar\.bz2|tar\.xz|zip|whl|egg)$/i.test(text)) return { kind: 'path', what: `is a package archive file: ${only}` };
  if (ecosystem === 'npm' && /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+(?:#.*)?$/.test(text)) {
    return { kind: 'vcs', what: `is a GitHub "user/repo" shorthand: ${only}` };
  }
  if (text.includes('/') && !(ecosystem === 'npm' && text.startsWith('@'))) return { kind: 'path', what: `is a local path: ${only}` };
  return undefined;
}

/**
 * Validates and normalises one declared dependency of a node in `language`.
 *
 * Checks run from the most to the least dangerous reading of the text: shell syntax, installer
 * options, then URLs/VCS/paths/aliases, then the ecosystem grammar (`dependencies-pip.ts`,
 * `dependencies-npm.ts`), so each message names the actual problem.
 */
export function parseDependency(language: Language, raw: string): DependencyParseResult {
  const ecosystem = ecosystemOf(language);
  if (typeof raw !== 'string') return failure(ecosystem, String(raw), { kind: 'syntax', what: 'is not a string' });
  const text = raw.trim();
  if (text === '') return failure(ecosystem, raw, { kind: 'empty', what: 'is empty' });
  if (raw.length > MAX_DEPENDENCY_SPEC_LENGTH) {
    return failure(ecosystem, raw, { kind: 'too_long', what: `is ${raw.length} characters long; the limit is ${MAX_DEPENDENCY_SPEC_LENGTH}` });
  }
  if (ecosystem === 'pypi') {
    const semicolon = text.indexOf(';');
    const marker = text.slice(semicolon + 1);
    // Quotes and parentheses belong to marker syntax; anything else shell-like is reported as shell text.
    if (semicolon > 0 && MARKER_VARIABLES.test(marker) && !/[;&$`{}\\|]/.test(marker) && controlCharacter(text) === undefined) {
      return failure(ecosystem, raw, {
        kind: 'marker',
        what: 'has an environment marker (the part after ";")',
        fix: `markers are not supported: declare the package only on the nodes that need it, e.g. ${JSON.stringify(text.slice(0, semicolon).trim())}`,
      });
    }
    const parenthesised = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*\(([^()]*)\)$/.exec(text);
    if (parenthesised && !SHELL_CHARACTERS.test(parenthesised[2]!)) {
      return failure(ecosystem, raw, { kind: 'syntax', what: 'uses the parenthesised version form', fix: `write it without parentheses, e.g. ${JSON.stringify(`${parenthesised[1]}${parenthesised[2]!.replace(/\s+/g, '')}`)}` });
    }
  }
  const early = shellProblem(ecosystem, text) ?? optionProblem(ecosystem, text);
  if (early) return failure(ecosystem, raw, early);
  if (ecosystem === 'pypi') {
    const direct = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*@/.exec(text);
    // `git@host:user/repo` is an SSH VCS address, which locatorProblem names as such.
    if (direct && !/^git@[^:]+:/.test(text)) {
      return failure(ecosystem, raw, { kind: 'direct_reference', what: 'is a direct reference ("name @ URL"): only packages from PyPI can be installed' });
    }
  }
  // npm also takes a locator after the name (`x@github:u/r`, `x@npm:y`, `x@file:../y`).
  const at = ecosystem === 'npm' ? text.indexOf('@', text.startsWith('@') ? 1 : 0) : -1;
  const located = (at > 0 ? locatorProblem(ecosystem, text.slice(at + 1).trim()) : undefined) ?? locatorProblem(ecosystem, text);
  if (located) return failure(ecosystem, raw, located);
  const parsed = ecosystem === 'pypi' ? parsePipSpec(text) : parseNpmSpec(text);
  if ('kind' in parsed) return failure(ecosystem, raw, parsed);
  return { ok: true, dependency: { ecosystem, name: parsed.name, spec: parsed.spec, raw } };
}

/** Every spec of one node: the valid ones (declaration order), and the problems with their index. */
export interface ParsedDependencies {
  dependencies: ParsedDependency[];
  problems: Array<DependencyProblem & { index: number }>;
}

/** Parses a node's specs; a second spec for an already declared package is a `duplicate` problem. */
export function parseDependencies(language: Language, raws: readonly string[]): ParsedDependencies {
  const dependencies: ParsedDependency[] = [];
  const problems: ParsedDependencies['problems'] = [];
  const firstIndex = new Map<string, number>();
  raws.forEach((raw, index) => {
    const result = parseDependency(language, raw);
    if (!result.ok) {
      problems.push({ ...result.problem, index });
      return;
    }
    const { name } = result.dependency;
    const first = firstIndex.get(name);
    if (first === undefined) {
      firstIndex.set(name, index);
      dependencies.push(result.dependency);
      return;
    }
    problems.push({
      index,
      kind: 'duplicate',
      spec: raw,
      message: `${quoteSpec(raw)} declares the package "${name}" again (dependencies[${first}] is ${quoteSpec(raws[first]!)}): declare each package once, with all its version constraints in one spec`,
    });
  });
  return { dependencies, problems };
}

/** Specs of one node that cannot be installed; `details.problems` lists each. */
export class InvalidDependencyError extends PodflowError {
  constructor(readonly problems: DependencyProblem[]) {
    super('INVALID_DEPENDENCY', problems.map((p) => p.message).join('\n'), { problems });
    this.name = 'InvalidDependencyError';
  }
}

/**
 * The canonical, sorted (by UTF-16 code units) and de-duplicated specs of a node: the input of a
 * dependency layer key. Exact repeats (`["Requests", "requests"]`) collapse into one here, while
 * validation at submit reports them; two different specs for one package are refused.
 * @throws InvalidDependencyError when a spec is invalid or a package is declared twice differently.
 */
export function normaliseDependencies(language: Language, raws: readonly string[]): string[] {
  const { dependencies, problems } = parseDependencies(language, raws);
  const canonical = new Set(dependencies.map((d) => d.spec));
  const real = problems.filter((p) => {
    if (p.kind !== 'duplicate') return true;
    const again = parseDependency(language, p.spec);
    return !(again.ok && canonical.has(again.dependency.spec));
  });
  if (real.length > 0) throw new InvalidDependencyError(real);
  return [...canonical].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
