import { InvalidWorkflowError, formatIssue } from './errors';
import { DEFAULT_WORKFLOW_LIMITS } from './types';
import { dependencyPolicyIssues, parseWorkflow, validateWorkflow } from './validate';

const py = (id: string, dependencies: unknown[]) => ({ id, language: 'python', code: 'def main(args): return {}', dependencies });
const ts = (id: string, dependencies: unknown[]) => ({ id, language: 'typescript', code: 'export function main() { return {}; }', dependencies });

function thrown(run: () => unknown): InvalidWorkflowError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidWorkflowError);
    return error as InvalidWorkflowError;
  }
  throw new Error('expected InvalidWorkflowError');
}

describe('validateWorkflow: dependencies', () => {
  it('stores canonical specs, in declaration order, on the normalised nodes', () => {
    const workflow = parseWorkflow({ id: 'w', nodes: [py('a', [' Python_Dateutil >= 2.8 , <3', 'Tabulate']), ts('b', ['dayjs@ >=1  <2'])] });
    expect(workflow.nodes[0]!.dependencies).toEqual(['python-dateutil<3,>=2.8', 'tabulate']);
    expect(workflow.nodes[1]!.dependencies).toEqual(['dayjs@>=1 <2']);
  });

  it('reports every bad spec with the node, the field path and the message, coded INVALID_DEPENDENCY', () => {
    const result = validateWorkflow({
      id: 'w',
      nodes: [py('load', ['tabulate', 'tabulate; rm -rf /', '-e .']), ts('report', ['github:iamkun/dayjs', 'dayjs', 'dayjs@2'])],
    });
    expect(result.workflow).toBeUndefined();
    expect(result.issues.every((issue) => issue.code === 'INVALID_DEPENDENCY')).toBe(true);
    expect(result.issues.map(formatIssue)).toEqual([
      expect.stringMatching(/^node "load" nodes\[0\]\.dependencies\[1\]: "tabulate; rm -rf \/" contains shell syntax/),
      expect.stringMatching(/^node "load" nodes\[0\]\.dependencies\[2\]: "-e \." is an installer option \("-e"\)/),
      expect.stringMatching(/^node "report" nodes\[1\]\.dependencies\[0\]: "github:iamkun\/dayjs" is a hosted git repository reference/),
      expect.stringMatching(/^node "report" nodes\[1\]\.dependencies\[2\]: "dayjs@2" declares the package "dayjs" again/),
    ]);
  });

  it('throws InvalidWorkflowError with code INVALID_DEPENDENCY when only dependencies are wrong', () => {
    const error = thrown(() => parseWorkflow({ id: 'w', nodes: [py('a', ['https://evil.test/x.whl'])] }));
    expect(error.code).toBe('INVALID_DEPENDENCY');
    expect(error.retryable).toBe(false);
    expect(error.message).toBe(
      'workflow "w" declares dependencies that cannot be installed (1 issue):\n' +
        'node "a" nodes[0].dependencies[0]: "https://evil.test/x.whl" is a URL: only packages from PyPI can be installed: write a plain package name with an optional version, e.g. "tabulate==0.9.0"',
    );
    expect(error.details).toEqual({ issues: [expect.objectContaining({ path: 'nodes[0].dependencies[0]', code: 'INVALID_DEPENDENCY' })] });
  });

  it('uses INVALID_WORKFLOW when other issues come with the dependency ones, and reports both', () => {
    const error = thrown(() => parseWorkflow({ id: 'w', nodes: [py('a', ['-e .']), py('a', [])] }));
    expect(error.code).toBe('INVALID_WORKFLOW');
    expect(error.message).toMatch(/duplicate node id/);
    expect(error.message).toMatch(/nodes\[0\]\.dependencies\[0\]: "-e \." is an installer option/);
  });

  it('reports an empty spec once, and leaves non-strings to the schema', () => {
    const { issues } = validateWorkflow({ id: 'w', nodes: [py('a', ['', 3, 'ok'])] });
    expect(issues.map(formatIssue)).toEqual([
      'node "a" nodes[0].dependencies[1]: must be a string, got number',
      expect.stringMatching(/^node "a" nodes\[0\]\.dependencies\[0\]: "" is empty/),
    ]);
  });

  it('checks specs against the language of their node, and skips nodes without a valid language', () => {
    expect(validateWorkflow({ id: 'w', nodes: [py('a', ['dayjs@1.11.13'])] }).issues.map(formatIssue)).toEqual([
      expect.stringMatching(/nodes\[0\]\.dependencies\[0\]: "dayjs@1\.11\.13" is a direct reference/),
    ]);
    const { issues } = validateWorkflow({ id: 'w', nodes: [{ ...py('a', ['-e .']), language: 'ruby' }] });
    expect(issues.map((i) => i.path)).toEqual(['nodes[0].language']);
  });

  it('applies the dependency policies given in the options', () => {
    const policies = [
      { label: 'operator', deny: ['*:left-pad'] },
      { label: 'tenant "acme"', allow: ['pypi:tabulate', 'npm:*'] },
    ];
    const definition = { id: 'w', nodes: [py('a', ['tabulate', 'requests']), ts('b', ['left-pad', 'dayjs'])] };
    expect(validateWorkflow(definition).workflow).toBeDefined();
    const error = thrown(() => parseWorkflow(definition, DEFAULT_WORKFLOW_LIMITS, { dependencyPolicies: policies }));
    expect(error.code).toBe('INVALID_DEPENDENCY');
    expect(error.issues.map(formatIssue)).toEqual([
      expect.stringMatching(/^node "a" nodes\[0\]\.dependencies\[1\]: "requests" \(pypi:requests\) is not on the tenant "acme" allow list/),
      expect.stringMatching(/^node "b" nodes\[1\]\.dependencies\[0\]: "left-pad" is refused by the operator deny list \(entry "\*:left-pad"\)/),
    ]);
  });
});

describe('dependencyPolicyIssues', () => {
  it('re-checks a validated workflow against the current policies', () => {
    const workflow = parseWorkflow({ id: 'w', nodes: [py('a', ['Tabulate==0.9.0']), ts('b', ['dayjs'])] });
    expect(dependencyPolicyIssues(workflow, [])).toEqual([]);
    expect(dependencyPolicyIssues(workflow, [{ label: 'operator', deny: ['pypi:tabulate'] }])).toEqual([
      {
        where: 'node "a"',
        path: 'nodes[0].dependencies[0]',
        code: 'INVALID_DEPENDENCY',
        message: expect.stringMatching(/^"tabulate==0\.9\.0" is refused by the operator deny list/),
      },
    ]);
  });
});
