import { parseWorkflow } from '@podflow/workflow';
import { assertEgressAllowed, egressTenantsEnv } from './egress-policy';

const code = 'def main(args): return {}';
const workflow = parseWorkflow({
  id: 'fetcher',
  nodes: [
    { id: 'fetch', language: 'python', code, network: true },
    { id: 'local', language: 'python', code },
  ],
});

describe('EGRESS_TENANTS', () => {
  it('grants no one by default, the listed tenants, or everyone with *', () => {
    const none = egressTenantsEnv.parse(undefined);
    expect(() => assertEgressAllowed(workflow, none, 'acme')).toThrow(
      'node "fetch" of workflow "fetcher" asks for network egress (network: true), but tenant "acme" is not granted egress: remove network: true, or ask the operator to add the tenant to EGRESS_TENANTS',
    );
    const listed = egressTenantsEnv.parse(' acme, globex ');
    expect(() => assertEgressAllowed(workflow, listed, 'acme')).not.toThrow();
    expect(() => assertEgressAllowed(workflow, listed, 'initech')).toThrow(expect.objectContaining({ code: 'EGRESS_NOT_GRANTED', details: { nodes: ['fetch'], tenant: 'initech', policy: 'EGRESS_TENANTS' } }));
    expect(() => assertEgressAllowed(workflow, egressTenantsEnv.parse('*'), 'initech')).not.toThrow();
  });

  it('never refuses a workflow that asks for no egress', () => {
    const quiet = parseWorkflow({ id: 'quiet', nodes: [{ id: 'a', language: 'python', code }] });
    expect(() => assertEgressAllowed(quiet, egressTenantsEnv.parse(''), 'acme')).not.toThrow();
  });

  it('refuses malformed entries at boot', () => {
    expect(egressTenantsEnv.safeParse('acme,bad tenant').success).toBe(false);
    expect(egressTenantsEnv.safeParse('*,acme').success).toBe(false);
  });
});
