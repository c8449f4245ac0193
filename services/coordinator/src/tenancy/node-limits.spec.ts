import { parseWorkflow } from '@podflow/workflow';
import { assertWithinNodeLimits, nodeLimitIssues, withTenantDefaults } from './node-limits';

const workflow = parseWorkflow({
  id: 'w',
  timeout: '2h',
  nodes: [
    { id: 'small', language: 'python', code: 'def main(args): return {}', timeout: '10s', resources: { memory: '128Mi', cpu: '250m' } },
    { id: 'big', language: 'python', code: 'def main(args): return {}', timeout: '20m', resources: { memory: '4Gi', cpu: '2' } },
    { id: 'plain', language: 'python', code: 'def main(args): return {}' },
  ],
});

describe('per-tenant node limits', () => {
  it('names each field over a limit, with the limit and how to fix it', () => {
    const issues = nodeLimitIssues(workflow, 'acme', { maxNodeTimeoutSeconds: 600, maxRunTimeoutSeconds: 3600, maxNodeMemory: '1Gi', maxNodeCpu: '1' });
    expect(issues.map((i) => i.path)).toEqual(['timeout', 'nodes[1].timeout', 'nodes[1].resources.memory', 'nodes[1].resources.cpu']);
    expect(issues[2]).toEqual({ where: 'node "big"', path: 'nodes[1].resources.memory', message: 'memory 4Gi is more than tenant "acme" may ask for (maxNodeMemory 1Gi): lower it, or ask your operator to raise the limit' });
    expect(issues[1]!.message).toContain('(maxNodeTimeoutSeconds 10m)');
  });

  it('lets through what is within the limits, exactly at them, and with no limits at all', () => {
    expect(nodeLimitIssues(workflow, 'acme', { maxNodeTimeoutSeconds: 1200, maxRunTimeoutSeconds: 7200, maxNodeMemory: '4Gi', maxNodeCpu: '2000m' })).toEqual([]);
    expect(nodeLimitIssues(workflow, 'acme', {})).toEqual([]);
  });

  it('throws INVALID_WORKFLOW listing the issues', () => {
    expect(() => assertWithinNodeLimits(workflow, 'acme', { maxNodeCpu: '500m' })).toThrow(expect.objectContaining({ code: 'INVALID_WORKFLOW', message: expect.stringContaining('nodes[1].resources.cpu') }));
  });

  it('lowers timeouts left at the deployment default to the tenant maximum, and keeps asked-for ones to be judged', () => {
    const defaults = parseWorkflow({ id: 'd', nodes: [{ id: 'a', language: 'python', code: 'def main(args): return {}' }] });
    const lowered = withTenantDefaults(defaults, { maxNodeTimeoutSeconds: 20, maxRunTimeoutSeconds: 600 });
    expect([lowered.timeoutMs, lowered.nodes[0]!.timeoutMs]).toEqual([600_000, 20_000]);
    expect(nodeLimitIssues(lowered, 'acme', { maxNodeTimeoutSeconds: 20, maxRunTimeoutSeconds: 600 })).toEqual([]);
    expect(withTenantDefaults(workflow, { maxNodeTimeoutSeconds: 600 })).toBe(workflow);
    expect(withTenantDefaults(defaults, {})).toBe(defaults);
  });
});
