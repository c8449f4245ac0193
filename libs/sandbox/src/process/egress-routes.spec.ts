import { BLOCKED_EGRESS_CIDRS, cidrOfInterface, egressRouteCommands, normaliseCidr, SLIRP } from './egress-routes';

describe('normaliseCidr', () => {
  it.each([
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['192.0.2.77/24', '192.0.2.0/24'],
    ['203.0.113.80/32', '203.0.113.80/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
  ])('%s → %s', (input, output) => expect(normaliseCidr(input)).toBe(output));

  it.each(['10.0.0.0', '10.0.0.256/8', '10.0.0.0/33', 'fe80::/10', 'ten/8'])('rejects %j', (input) => expect(normaliseCidr(input)).toBeUndefined());

  it('reads interface netmasks', () => {
    expect(cidrOfInterface('192.0.2.2', '255.255.255.0')).toBe('192.0.2.0/24');
    expect(cidrOfInterface('10.244.1.7', '255.255.0.0')).toBe('10.244.0.0/16');
  });
});

describe('egressRouteCommands', () => {
  it('prohibits every special range and the host subnets before the default route exists', () => {
    const lines = egressRouteCommands({ hostSubnets: ['192.0.2.0/24', '127.0.0.0/8'], allowedCidrs: [] });
    const prohibited = lines.filter((l) => l.startsWith('route add prohibit ')).map((l) => l.slice('route add prohibit '.length));
    expect(new Set(prohibited)).toEqual(new Set([...BLOCKED_EGRESS_CIDRS, '192.0.2.0/24']));
    expect(prohibited).toContain('169.254.0.0/16');
    expect(lines.at(-1)).toBe(`route add default via ${SLIRP.gateway}`);
    expect(lines.findIndex((l) => l.startsWith('route add default'))).toBeGreaterThan(lines.length - 1 - [...lines].reverse().findIndex((l) => l.includes('prohibit')));
  });

  it('routes ranges the operator re-opened, and drops a prohibit that equals one', () => {
    const lines = egressRouteCommands({ hostSubnets: ['192.0.2.0/24'], allowedCidrs: ['192.0.2.10/32', '10.0.0.0/8'] });
    expect(lines).toContain(`route add 192.0.2.10/32 via ${SLIRP.gateway}`);
    expect(lines).toContain(`route add 10.0.0.0/8 via ${SLIRP.gateway}`);
    expect(lines).not.toContain('route add prohibit 10.0.0.0/8');
    expect(lines).toContain('route add prohibit 192.0.2.0/24');
  });

  it('names a bad operator range', () => {
    expect(() => egressRouteCommands({ hostSubnets: [], allowedCidrs: ['10.0.0.0'] })).toThrow('"10.0.0.0" is not an IPv4 CIDR');
  });
});
