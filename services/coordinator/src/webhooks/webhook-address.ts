import { BlockList, isIP } from 'node:net';
import { TEMPORARY_DNS_CODES, webhookLookups, type LookupContext, type WebhookLookup } from './webhook-lookups';

export type { LookupContext, WebhookLookup } from './webhook-lookups';

/**
 * Where webhooks may go. A webhook URL is tenant input and the coordinator sits inside the
 * cluster network, so every address that is not public is refused (SSRF) unless listed here.
 */
export interface WebhookNetworkPolicy {
  /** Ranges reachable although not public (`10.20.0.0/16`, `fd00::/8`, `127.0.0.1/32`); none by default. */
  readonly allowedCidrs: readonly string[];
}

/**
 * A URL a webhook may not be sent to. Retrying does not help until the URL or the policy changes,
 * unless `temporary`: the name could not be resolved just now (a DNS timeout or SERVFAIL).
 */
export class WebhookTargetError extends Error {
  override readonly name = 'WebhookTargetError';

  /**
   * @param message what was refused, where, and how to fix it (shown to the tenant).
   * @param reason the short cause alone, e.g. `127.0.0.1 is a loopback address`.
   */
  constructor(
    message: string,
    readonly reason: string = message,
    readonly temporary = false,
  ) {
    super(message);
  }
}

/** Where a vetted webhook URL connects: exactly this address, so a second DNS answer cannot redirect it. */
export interface WebhookTarget {
  url: URL;
  address: string;
  family: 4 | 6;
}


interface Range {
  readonly cidr: string;
  /** Completes "<address> is …". */
  readonly kind: string;
}

/**
 * Ranges refused by default: everything that is not public unicast. The first match names the
 * address in the message, so narrower ranges come before the ranges that contain them.
 */
const REFUSED_RANGES: readonly Range[] = [
  { cidr: '0.0.0.0/8', kind: 'an unspecified ("this network") address' },
  { cidr: '10.0.0.0/8', kind: 'a private address' },
  { cidr: '100.64.0.0/10', kind: 'a carrier-grade NAT address' },
  { cidr: '127.0.0.0/8', kind: 'a loopback address' },
  { cidr: '169.254.169.254/32', kind: 'a link-local address (the cloud metadata service)' },
  { cidr: '169.254.0.0/16', kind: 'a link-local address' },
  { cidr: '172.16.0.0/12', kind: 'a private address' },
  { cidr: '192.0.0.0/24', kind: 'a reserved (IETF protocol assignments) address' },
  { cidr: '192.0.2.0/24', kind: 'a documentation address' },
  { cidr: '192.88.99.0/24', kind: 'a reserved (6to4 relay anycast) address' },
  { cidr: '192.168.0.0/16', kind: 'a private address' },
  { cidr: '198.18.0.0/15', kind: 'a reserved (benchmarking) address' },
  { cidr: '198.51.100.0/24', kind: 'a documentation address' },
  { cidr: '203.0.113.0/24', kind: 'a documentation address' },
  { cidr: '224.0.0.0/4', kind: 'a multicast address' },
  { cidr: '255.255.255.255/32', kind: 'the broadcast address' },
  { cidr: '240.0.0.0/4', kind: 'a reserved address' },
  { cidr: '::/128', kind: 'an unspecified address' },
  { cidr: '::1/128', kind: 'a loopback address' },
  { cidr: '::/96', kind: 'a deprecated IPv4-compatible address' },
  { cidr: '64:ff9b:1::/48', kind: 'a local-use NAT64 address' },
  { cidr: '100::/64', kind: 'a discard-only address' },
  // Teredo hides the client's IPv4 address (XORed); refusing the whole tunnel range is simpler and safe.
  { cidr: '2001::/32', kind: 'a Teredo tunnel address' },
  { cidr: '2001::/23', kind: 'a reserved (IETF protocol assignments) address' },
  { cidr: '2001:db8::/32', kind: 'a documentation address' },
  { cidr: '3fff::/20', kind: 'a documentation address' },
  { cidr: 'fc00::/7', kind: 'a unique-local (private) address' },
  { cidr: 'fe80::/10', kind: 'a link-local address' },
  { cidr: 'fec0::/10', kind: 'a deprecated site-local address' },
  { cidr: 'ff00::/8', kind: 'a multicast address' },
];

/**
 * IPv6 forms that carry an IPv4 address a gateway or the kernel would forward to: judged by that
 * address, so `::ffff:127.0.0.1` is as refused as `127.0.0.1`. `at` is the hextet it starts at.
 */
const IPV4_EMBEDDINGS = [
  { cidr: '::ffff:0:0/96', form: 'an IPv4-mapped form', at: 6 },
  { cidr: '64:ff9b::/96', form: 'a NAT64 form', at: 6 },
  { cidr: '2002::/16', form: 'a 6to4 form', at: 1 },
].map((embedding) => ({ ...embedding, list: blockListOf([embedding.cidr]) }));

const REFUSED = REFUSED_RANGES.map((range) => ({ ...range, list: blockListOf([range.cidr]) }));

/** Public IPv6 unicast lives in 2000::/3; whatever else the list above misses is still refused. */
const GLOBAL_UNICAST_V6 = blockListOf(['2000::/3']);

const PUBLIC_ONLY = 'webhooks go to public addresses only (an operator can allow a range with WEBHOOK_ALLOWED_CIDRS)';

/** Built once per policy object: policies live as long as the config. */
const allowedLists = new WeakMap<WebhookNetworkPolicy, BlockList>();

/**
 * Why `cidr` is not a usable range (`10.20.0.0/16`, `fd00::/8`, or one address), or undefined
 * when it is. For validating WEBHOOK_ALLOWED_CIDRS at boot.
 */
export function cidrProblem(cidr: string): string | undefined {
  return parseCidr(cidr) ? undefined : `"${cidr}" is not an address range like 10.20.0.0/16, fd00::/8 or a single address`;
}

/** Undefined when `address` (an IP) may be contacted under `policy`; otherwise why not, e.g. `127.0.0.1 is a loopback address`. */
export function refusedAddressReason(address: string, policy: WebhookNetworkPolicy): string | undefined {
  const kind = refusedKind(address, policy);
  return kind && `${address} is ${kind}`;
}

/**
 * Checks a webhook URL and resolves its host, refusing it when any address it resolves to is
 * refused (a name with one public and one private address could land on either). The caller
 * connects to the returned address, never to a second lookup's answer (DNS rebinding).
 * @throws WebhookTargetError naming the URL, the address and the fix.
 */
export async function resolveWebhookTarget(url: string, policy: WebhookNetworkPolicy, lookup: WebhookLookup = webhookLookups.lookup, context: LookupContext = {}): Promise<WebhookTarget> {
  const parsed = parseWebhookUrl(url);
  const host = webhookHost(parsed);
  const literal = isIP(host) !== 0;
  const addresses = literal ? [host] : await resolveHost(parsed, host, lookup, context);
  for (const address of addresses) {
    const kind = refusedKind(address, policy);
    if (kind) {
      if (!literal) throw notPublicName(parsed, host);
      throw new WebhookTargetError(`webhook URL ${parsed.href} points at ${address}, ${kind}; ${PUBLIC_ONLY}`, `${address} is ${kind}`);
    }
  }
  return { url: parsed, address: addresses[0], family: isIP(addresses[0]) === 6 ? 6 : 4 };
}

/**
 * Whether a tenant may send webhooks to `host`: `*` allows any host, `example.com` that host
 * only, `*.example.com` its subdomains but not example.com itself. Case and a trailing dot are
 * ignored; IPv6 hosts may be given with or without brackets.
 */
export function hostAllowed(host: string, patterns: readonly string[]): boolean {
  const name = normalizeHost(host);
  if (name === '') return false;
  return patterns.some((pattern) => hostMatches(name, normalizeHost(pattern)));
}

/**
 * A webhook URL: absolute http(s), without credentials.
 * @throws WebhookTargetError saying what is wrong with it.
 */
export function parseWebhookUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new WebhookTargetError(`webhook URL ${JSON.stringify(url.slice(0, 200))} is not a URL; give an absolute http:// or https:// URL`, 'not a URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new WebhookTargetError(`webhook URL ${parsed.href} uses ${parsed.protocol}; webhooks are sent over http: or https: only`, `${parsed.protocol} is not http: or https:`);
  }
  if (parsed.username || parsed.password) {
    // Never echo the URL here: it holds the password.
    throw new WebhookTargetError(`webhook URL for host ${parsed.host} carries credentials (user:password@); remove them and have the receiver check the podflow-signature header instead`, 'the URL carries credentials');
  }
  return parsed;
}

/** The URL's host as DNS and `isIP` take it: IPv6 literals without their brackets. */
export function webhookHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

async function resolveHost(url: URL, host: string, lookup: WebhookLookup, context: LookupContext): Promise<string[]> {
  let answers: readonly { address: string }[];
  try {
    answers = await lookup(host, { all: true }, context);
  } catch (error) {
    const failure = error as NodeJS.ErrnoException | undefined;
    const code = failure?.code ?? failure?.message ?? String(error);
    if (TEMPORARY_DNS_CODES.has(String(failure?.code))) {
      throw new WebhookTargetError(`webhook URL ${url.href}: host ${host} could not be resolved just now (${code}); retry in a moment`, `${host} could not be resolved (${code})`, true);
    }
    throw notPublicName(url, host);
  }
  if (answers.length === 0) throw notPublicName(url, host);
  return answers.map((answer) => answer.address);
}

/**
 * A name that does not resolve, or resolves to an address that is not public: one message for
 * both, so a tenant cannot tell which of the coordinator's internal names exist (a red-team
 * finding: "resolves to a private address" against "does not resolve" answered that, one free
 * request per guess).
 */
function notPublicName(url: URL, host: string): WebhookTargetError {
  return new WebhookTargetError(
    `webhook URL ${url.href}: host ${host} does not resolve to a public address: check its DNS record; ${PUBLIC_ONLY}`,
    `${host} does not resolve to a public address`,
  );
}

/** Completes "<address> is …" when refused; undefined when the address may be contacted. */
function refusedKind(address: string, policy: WebhookNetworkPolicy): string | undefined {
  // A zone (`fe80::1%eth0`) names an interface, not a different address.
  const ip = address.split('%')[0];
  const family = isIP(ip);
  if (family === 0) return 'not an IP address';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (allowedList(policy).check(ip, type)) return undefined;
  if (family === 6) {
    const embedded = embeddedIpv4(ip);
    if (embedded) {
      const inner = refusedKind(embedded.ipv4, policy);
      return inner && `${embedded.form} of ${embedded.ipv4}, ${inner}`;
    }
  }
  const range = REFUSED.find((candidate) => candidate.list.check(ip, type));
  if (range) return range.kind;
  if (family === 6 && !GLOBAL_UNICAST_V6.check(ip, 'ipv6')) return 'not a global unicast address';
  return undefined;
}

function embeddedIpv4(ipv6: string): { form: string; ipv4: string } | undefined {
  const embedding = IPV4_EMBEDDINGS.find((candidate) => candidate.list.check(ipv6, 'ipv6'));
  if (!embedding) return undefined;
  const hextets = ipv6Hextets(ipv6);
  const [high, low] = [hextets[embedding.at], hextets[embedding.at + 1]];
  return { form: embedding.form, ipv4: [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.') };
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a trailing dotted quad converted). */
function ipv6Hextets(ipv6: string): number[] {
  const dottedQuad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ipv6);
  const text = dottedQuad
    ? ipv6.slice(0, dottedQuad.index) + [(+dottedQuad[1] << 8) | +dottedQuad[2], (+dottedQuad[3] << 8) | +dottedQuad[4]].map((n) => n.toString(16)).join(':')
    : ipv6;
  const [head, tail] = text.split('::');
  const groups = (part: string | undefined) => (part ? part.split(':').map((hex) => parseInt(hex, 16)) : []);
  const before = groups(head);
  const after = groups(tail);
  return [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after];
}

function allowedList(policy: WebhookNetworkPolicy): BlockList {
  let list = allowedLists.get(policy);
  if (!list) {
    list = blockListOf(policy.allowedCidrs);
    allowedLists.set(policy, list);
  }
  return list;
}

function blockListOf(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const range = parseCidr(cidr);
    if (!range) throw new Error(`webhook network policy: ${cidrProblem(cidr)}; fix WEBHOOK_ALLOWED_CIDRS`);
    list.addSubnet(range.network, range.prefix, range.type);
  }
  return list;
}

function parseCidr(cidr: string): { network: string; prefix: number; type: 'ipv4' | 'ipv6' } | undefined {
  const [network, prefixText, extra] = cidr.trim().split('/');
  const family = isIP(network);
  if (family === 0 || extra !== undefined) return undefined;
  const bits = family === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefix > bits) return undefined;
  return { network, prefix, type: family === 4 ? 'ipv4' : 'ipv6' };
}

function normalizeHost(host: string): string {
  return host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
}

function hostMatches(name: string, pattern: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1);
    return name.endsWith(suffix) && name.length > suffix.length;
  }
  return name === pattern;
}
