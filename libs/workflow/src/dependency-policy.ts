import { quoteSpec, type DependencyEcosystem, type DependencyProblem, type ParsedDependency } from './dependencies';
import { normalisePipName } from './dependencies-pip';

/**
 * Allow and deny lists for declared packages, set by the operator and per tenant. Entries are
 * `<ecosystem>:<name glob>`: `pypi:requests`, `npm:@types/*`, `*:left-pad`. `*` matches any run of
 * characters (including `/`); PyPI globs are compared after PEP 503 normalisation, so
 * `pypi:Python_Dateutil` matches `python-dateutil`.
 */
export interface DependencyPolicy {
  /** When non-empty, only packages matching an entry may be declared. */
  allow?: readonly string[];
  /** Packages matching an entry are refused, whatever the allow lists say. */
  deny?: readonly string[];
  /** Who set the lists, for messages: `operator`, `tenant "acme"`. */
  label?: string;
}

/** One parsed list entry. */
export interface DependencyPolicyEntry {
  entry: string;
  ecosystem: DependencyEcosystem | '*';
  glob: string;
}

const ENTRY = /^(pypi|npm|\*):(.+)$/;
const GLOB = /^[A-Za-z0-9@/._~*-]+$/;
const ENTRY_HINT = 'write <ecosystem>:<name glob> with ecosystem pypi, npm or *, e.g. "pypi:requests", "npm:@types/*" or "*:left-pad"';

/** Parses one list entry, or says what is wrong with it. */
export function parseDependencyPolicyEntry(entry: string): { ok: true; entry: DependencyPolicyEntry } | { ok: false; message: string } {
  const match = ENTRY.exec(entry);
  if (!match) return { ok: false, message: `${JSON.stringify(entry)} is not a list entry: ${ENTRY_HINT}` };
  const glob = match[2]!;
  if (!GLOB.test(glob)) {
    return { ok: false, message: `${JSON.stringify(entry)} has an invalid name glob ${JSON.stringify(glob)}: use package-name characters and "*"; ${ENTRY_HINT}` };
  }
  return { ok: true, entry: { entry, ecosystem: match[1] as DependencyPolicyEntry['ecosystem'], glob } };
}

function globMatches(glob: string, ecosystem: DependencyEcosystem, name: string): boolean {
  const normalised = ecosystem === 'pypi' ? glob.split('*').map(normalisePipName).join('*') : glob.toLowerCase();
  const pattern = normalised.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${pattern}$`).test(name);
}

function entryMatches(entry: string, dependency: ParsedDependency): boolean {
  const parsed = parseDependencyPolicyEntry(entry);
  // Entries are validated where they are configured; an invalid one here is a programming error.
  if (!parsed.ok) throw new Error(`invalid dependency policy entry: ${parsed.message}`);
  const { ecosystem, glob } = parsed.entry;
  return (ecosystem === '*' || ecosystem === dependency.ecosystem) && globMatches(glob, dependency.ecosystem, dependency.name);
}

function listed(entries: readonly string[]): string {
  const shown = entries.slice(0, 10).map((e) => JSON.stringify(e)).join(', ');
  return entries.length > 10 ? `${shown}, ... (${entries.length} entries)` : shown;
}

/**
 * Checks one valid dependency against every policy that applies (the operator's, then the
 * tenant's). Refused when any deny entry matches, or when some policy has a non-empty allow list
 * that no entry of matches: every allow list must admit the package, so a tenant list can narrow
 * the operator's but never widen it.
 * @returns the refusal (`denied` or `not_allowed`), or undefined when the package may be used.
 */
export function checkDependencyPolicy(dependency: ParsedDependency, policies: readonly DependencyPolicy[]): DependencyProblem | undefined {
  const spec = quoteSpec(dependency.raw);
  for (const [index, policy] of policies.entries()) {
    const label = policy.label ?? `dependency policy #${index + 1}`;
    const deny = (policy.deny ?? []).find((entry) => entryMatches(entry, dependency));
    if (deny !== undefined) {
      return {
        kind: 'denied',
        spec: dependency.raw,
        message: `${spec} is refused by the ${label} deny list (entry ${JSON.stringify(deny)}): remove this dependency, or ask whoever sets the ${label} list to lift it`,
      };
    }
  }
  for (const [index, policy] of policies.entries()) {
    const label = policy.label ?? `dependency policy #${index + 1}`;
    const allow = policy.allow ?? [];
    if (allow.length === 0 || allow.some((entry) => entryMatches(entry, dependency))) continue;
    return {
      kind: 'not_allowed',
      spec: dependency.raw,
      message: `${spec} (${dependency.ecosystem}:${dependency.name}) is not on the ${label} allow list (${listed(allow)}): use a listed package, or ask for it to be added`,
    };
  }
  return undefined;
}
