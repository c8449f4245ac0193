/**
 * Pure: the routing table of a sandbox granted egress. The sandbox's network namespace reaches
 * the world through slirp4netns (user-mode TCP/IP on the host side, `--disable-host-loopback`);
 * inside it, `prohibit` routes make every address that is not the public internet unreachable
 * (EACCES at `connect`): the host's own subnets, loopback, link-local (cloud metadata at
 * 169.254.169.254), private and other special-purpose ranges. The code has no capability in that
 * namespace, so it cannot change the table. The operator may re-open specific ranges.
 */

/** slirp4netns's fixed layout: the sandbox is .100, the gateway .2 (the host) and DNS .3. */
export const SLIRP = {
  device: 'tap0',
  address: '10.0.2.100/24',
  gateway: '10.0.2.2',
  dns: '10.0.2.3',
  mtu: 65520,
} as const;

/**
 * IPv4 ranges never reached from a sandbox unless the operator lists them (RFC 6890
 * special-purpose registry, less the ranges that are the public internet). slirp4netns runs
 * without IPv6, so the sandbox has no IPv6 route at all.
 */
export const BLOCKED_EGRESS_CIDRS = [
  '0.0.0.0/8', // "this network"
  '10.0.0.0/8', // private
  '100.64.0.0/10', // carrier-grade NAT (also many clusters' pod and service ranges)
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, cloud metadata services
  '172.16.0.0/12', // private
  '192.0.0.0/24', // IETF protocol assignments
  '192.168.0.0/16', // private
  '198.18.0.0/15', // benchmarking
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, broadcast
] as const;

const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** `a.b.c.d/n` with the host bits cleared, or `undefined` when it is not an IPv4 CIDR. */
export function normaliseCidr(cidr: string): string | undefined {
  const match = CIDR.exec(cidr.trim());
  if (!match) return undefined;
  const octets = match.slice(1, 5).map(Number);
  const bits = Number(match[5]);
  if (octets.some((o) => o > 255) || bits > 32) return undefined;
  const value = octets.reduce((acc, o) => acc * 256 + o, 0);
  const mask = bits === 0 ? 0 : 2 ** 32 - 2 ** (32 - bits);
  const network = Number((BigInt(value) & BigInt(mask)).toString());
  return `${[24, 16, 8, 0].map((shift) => (network >>> shift) & 255).join('.')}/${bits}`;
}

/** The CIDR of an interface address and its netmask (`os.networkInterfaces()`), e.g. the host's LAN. */
export function cidrOfInterface(address: string, netmask: string): string | undefined {
  const bits = netmask
    .split('.')
    .map(Number)
    .reduce((acc, octet) => acc + (octet >>> 0).toString(2).replace(/0/g, '').length, 0);
  return normaliseCidr(`${address}/${bits}`);
}

export interface EgressRoutesInput {
  /** Subnets of the host's own interfaces: the host and its neighbours are never reachable. */
  hostSubnets: string[];
  /** Ranges the operator re-opens (`SANDBOX_EGRESS_ALLOW_CIDRS`), e.g. an internal package mirror. */
  allowedCidrs: string[];
}

/**
 * `ip -batch` lines that configure the namespace: loopback and the tap device up, every blocked
 * range prohibited, allowed ranges routed (longest prefix wins, so an allowed /24 inside a
 * prohibited /8 is reachable), the default route last. Prohibit routes go in before the default
 * route, so there is no moment when a blocked range is reachable.
 */
export function egressRouteCommands(input: EgressRoutesInput): string[] {
  const allowed = new Set(input.allowedCidrs.map(requireCidr));
  const blocked = new Set([...BLOCKED_EGRESS_CIDRS, ...input.hostSubnets.map(requireCidr)]);
  // The slirp subnet is the sandbox's own link: its connected route covers gateway and DNS.
  blocked.delete(normaliseCidr(SLIRP.address)!);
  const lines = ['link set lo up', `addr add ${SLIRP.address} dev ${SLIRP.device}`, `link set ${SLIRP.device} mtu ${SLIRP.mtu} up`];
  for (const cidr of blocked) if (!allowed.has(cidr)) lines.push(`route add prohibit ${cidr}`);
  for (const cidr of allowed) lines.push(`route add ${cidr} via ${SLIRP.gateway}`);
  lines.push(`route add default via ${SLIRP.gateway}`);
  return lines;
}

function requireCidr(cidr: string): string {
  const normalised = normaliseCidr(cidr);
  if (!normalised) throw new Error(`"${cidr}" is not an IPv4 CIDR such as 10.1.2.0/24`);
  return normalised;
}
