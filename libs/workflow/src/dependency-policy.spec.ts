import { parseDependency, type ParsedDependency } from './dependencies';
import { checkDependencyPolicy, parseDependencyPolicyEntry, type DependencyPolicy } from './dependency-policy';

function dep(language: 'python' | 'typescript', raw: string): ParsedDependency {
  const result = parseDependency(language, raw);
  if (!result.ok) throw new Error(result.problem.message);
  return result.dependency;
}

const operator: DependencyPolicy = { label: 'operator', deny: ['*:left-pad', 'pypi:evil-*'] };
const acme: DependencyPolicy = { label: 'tenant "acme"', allow: ['pypi:tabulate', 'pypi:Python_Dateutil', 'npm:dayjs', 'npm:@types/*'], deny: ['npm:@types/evil'] };

describe('parseDependencyPolicyEntry', () => {
  it.each(['pypi:requests', 'npm:@types/*', '*:left-pad', 'pypi:*', 'npm:lodash.*'])('accepts %j', (entry) => {
    expect(parseDependencyPolicyEntry(entry).ok).toBe(true);
  });

  it.each([
    ['requests', /is not a list entry: write <ecosystem>:<name glob>/],
    ['maven:junit', /is not a list entry/],
    ['PyPI:requests', /is not a list entry/],
    ['pypi:', /is not a list entry/],
    ['pypi:req uests', /invalid name glob "req uests"/],
    ['npm:$(id)', /invalid name glob/],
  ])('refuses %j', (entry, message) => {
    const parsed = parseDependencyPolicyEntry(entry);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.message).toMatch(message);
  });
});

describe('checkDependencyPolicy', () => {
  it('lets everything through without policies or with empty lists', () => {
    expect(checkDependencyPolicy(dep('python', 'requests'), [])).toBeUndefined();
    expect(checkDependencyPolicy(dep('python', 'requests'), [{ allow: [], deny: [] }])).toBeUndefined();
  });

  it('refuses a package matching a deny entry, in either ecosystem with *, naming the list and the entry', () => {
    expect(checkDependencyPolicy(dep('typescript', 'left-pad@1.3.0'), [operator])).toEqual({
      kind: 'denied',
      spec: 'left-pad@1.3.0',
      message: '"left-pad@1.3.0" is refused by the operator deny list (entry "*:left-pad"): remove this dependency, or ask whoever sets the operator list to lift it',
    });
    expect(checkDependencyPolicy(dep('python', 'Left_Pad'), [operator])?.kind).toBe('denied');
    expect(checkDependencyPolicy(dep('python', 'evil.things==1'), [operator])?.message).toMatch(/entry "pypi:evil-\*"/);
    expect(checkDependencyPolicy(dep('typescript', 'evil-things'), [operator])).toBeUndefined();
  });

  it('compares PyPI names after PEP 503 normalisation, on both sides', () => {
    expect(checkDependencyPolicy(dep('python', 'python.dateutil>=2'), [acme])).toBeUndefined();
    expect(checkDependencyPolicy(dep('python', 'Tabulate'), [acme])).toBeUndefined();
  });

  it('matches scoped npm globs', () => {
    expect(checkDependencyPolicy(dep('typescript', '@types/node@20'), [acme])).toBeUndefined();
    expect(checkDependencyPolicy(dep('typescript', '@typesx/node'), [acme])?.kind).toBe('not_allowed');
    expect(checkDependencyPolicy(dep('typescript', '@types/evil'), [acme])?.message).toMatch(/tenant "acme" deny list \(entry "npm:@types\/evil"\)/);
  });

  it('refuses a package missing from a non-empty allow list, naming the list and its entries', () => {
    expect(checkDependencyPolicy(dep('python', 'requests>=2'), [operator, acme])).toEqual({
      kind: 'not_allowed',
      spec: 'requests>=2',
      message:
        '"requests>=2" (pypi:requests) is not on the tenant "acme" allow list ("pypi:tabulate", "pypi:Python_Dateutil", "npm:dayjs", "npm:@types/*"): use a listed package, or ask for it to be added',
    });
    // An allow entry is per ecosystem: npm:dayjs does not admit a PyPI package called dayjs.
    expect(checkDependencyPolicy(dep('python', 'dayjs'), [acme])?.kind).toBe('not_allowed');
  });

  it('applies every list: a tenant cannot widen the operator allow list, nor allow what the operator denies', () => {
    const narrowOperator: DependencyPolicy = { label: 'operator', allow: ['pypi:*'], deny: ['pypi:requests'] };
    const wideTenant: DependencyPolicy = { label: 'tenant "t"', allow: ['*:*'] };
    expect(checkDependencyPolicy(dep('typescript', 'dayjs'), [narrowOperator, wideTenant])?.message).toMatch(/not on the operator allow list/);
    expect(checkDependencyPolicy(dep('python', 'requests'), [narrowOperator, wideTenant])?.message).toMatch(/operator deny list/);
    expect(checkDependencyPolicy(dep('python', 'numpy'), [narrowOperator, wideTenant])).toBeUndefined();
  });

  it('reports a deny before a missing allow entry, and names unlabelled policies by position', () => {
    const problem = checkDependencyPolicy(dep('python', 'requests'), [{ allow: ['pypi:numpy'] }, { deny: ['pypi:requests'] }]);
    expect(problem?.message).toMatch(/dependency policy #2 deny list/);
  });

  it('shortens long allow lists in the message', () => {
    const allow = Array.from({ length: 15 }, (_, i) => `pypi:pkg${i}`);
    expect(checkDependencyPolicy(dep('python', 'other'), [{ allow }])?.message).toMatch(/"pypi:pkg9", \.\.\. \(15 entries\)/);
  });
});
