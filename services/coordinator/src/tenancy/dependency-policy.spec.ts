import { loadCoordinatorConfig } from '../config';
import { dependencyPoliciesFor, dependencyPolicyEnv } from './dependency-policy';

const baseEnv = { REDIS_URL: 'redis://127.0.0.1:6379', PODFLOW_API_KEYS: 'k=acme', FILE_URL_SECRET: 'x'.repeat(32) };

function errorsOf(raw: string): string[] {
  const parsed = dependencyPolicyEnv.safeParse(raw);
  expect(parsed.success).toBe(false);
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('DEPENDENCY_POLICY', () => {
  it('is optional; empty means no lists', () => {
    expect(dependencyPolicyEnv.parse(undefined)).toBeUndefined();
    expect(dependencyPolicyEnv.parse('  ')).toBeUndefined();
  });

  it('parses operator and tenant lists', () => {
    const raw = '{"allow":["pypi:*","npm:*"],"deny":["*:left-pad"],"tenants":{"acme":{"allow":["pypi:tabulate"]},"globex":{"deny":["npm:@types/*"]}}}';
    expect(dependencyPolicyEnv.parse(raw)).toEqual({
      allow: ['pypi:*', 'npm:*'],
      deny: ['*:left-pad'],
      tenants: { acme: { allow: ['pypi:tabulate'] }, globex: { deny: ['npm:@types/*'] } },
    });
  });

  it.each([
    ['not JSON', '{deny: [x]}', /^: DEPENDENCY_POLICY is not JSON .*; e\.g\. \{"deny"/],
    ['a bad entry', '{"deny":["left-pad"]}', /^deny\.0: "left-pad" is not a list entry: write <ecosystem>:<name glob>/],
    ['a bad tenant entry', '{"tenants":{"acme":{"allow":["pypi:a b"]}}}', /^tenants\.acme\.allow\.0: "pypi:a b" has an invalid name glob/],
    ['an unknown field', '{"allowed":["pypi:x"]}', /^: unknown field\(s\) allowed: allowed are allow, deny and tenants/],
    ['a bad tenant name', '{"tenants":{"a.b":{}}}', /^tenants\.a\.b: a tenant is letters, digits/],
    ['a list that is not an array', '{"deny":"pypi:x"}', /^deny: Expected array/],
  ])('stops the boot on %s, naming where', (_what, raw, message) => {
    expect(errorsOf(raw)).toEqual([expect.stringMatching(message)]);
  });

  it('names the variable in the boot error', () => {
    expect(() => loadCoordinatorConfig({ ...baseEnv, DEPENDENCY_POLICY: '{"tenants":{"acme":{"deny":["requests"]}}}' })).toThrow(
      /DEPENDENCY_POLICY\.tenants\.acme\.deny\.0: "requests" is not a list entry/,
    );
  });
});

describe('dependencyPoliciesFor', () => {
  const config = dependencyPolicyEnv.parse('{"deny":["*:left-pad"],"tenants":{"acme":{"allow":["pypi:tabulate"]}}}');

  it('gives the operator lists, then the tenant lists, labelled for messages', () => {
    expect(dependencyPoliciesFor(config, 'acme')).toEqual([
      { label: 'operator', deny: ['*:left-pad'], allow: undefined },
      { label: 'tenant "acme"', allow: ['pypi:tabulate'], deny: undefined },
    ]);
    expect(dependencyPoliciesFor(config, 'globex')).toEqual([{ label: 'operator', deny: ['*:left-pad'], allow: undefined }]);
    expect(dependencyPoliciesFor(config, '__proto__')).toHaveLength(1);
    expect(dependencyPoliciesFor(undefined, 'acme')).toEqual([]);
  });
});
