import { isIP } from 'node:net';
import {
  WebhookTargetError,
  cidrProblem,
  hostAllowed,
  refusedAddressReason,
  resolveWebhookTarget,
  type WebhookLookup,
  type WebhookNetworkPolicy,
} from './webhook-address';

const DEFAULT_POLICY: WebhookNetworkPolicy = { allowedCidrs: [] };

/** A resolver over a fixed table; unknown names fail like getaddrinfo does. */
function fakeLookup(table: Record<string, string[]>): WebhookLookup & { calls: string[] } {
  const calls: string[] = [];
  const lookup = async (hostname: string) => {
    calls.push(hostname);
    const addresses = table[hostname];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: isIP(address) }));
  };
  return Object.assign(lookup, { calls });
}

async function refusal(promise: Promise<unknown>): Promise<WebhookTargetError> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(WebhookTargetError);
  return error as WebhookTargetError;
}

describe('refusedAddressReason', () => {
  it.each([
    ['169.254.169.254', 'a link-local address (the cloud metadata service)'],
    ['169.254.1.1', 'a link-local address'],
    ['127.0.0.1', 'a loopback address'],
    ['127.1.2.3', 'a loopback address'],
    ['::1', 'a loopback address'],
    ['::ffff:127.0.0.1', 'an IPv4-mapped form of 127.0.0.1, a loopback address'],
    ['::ffff:a9fe:a9fe', 'an IPv4-mapped form of 169.254.169.254, a link-local address (the cloud metadata service)'],
    ['10.1.2.3', 'a private address'],
    ['172.20.0.1', 'a private address'],
    ['192.168.1.1', 'a private address'],
    ['100.64.0.1', 'a carrier-grade NAT address'],
    ['0.0.0.0', 'an unspecified ("this network") address'],
    ['::', 'an unspecified address'],
    ['fe80::1', 'a link-local address'],
    ['fc00::1', 'a unique-local (private) address'],
    ['fd12:3456::1', 'a unique-local (private) address'],
    ['224.0.0.1', 'a multicast address'],
    ['ff02::1', 'a multicast address'],
    ['255.255.255.255', 'the broadcast address'],
    ['240.0.0.1', 'a reserved address'],
    ['192.0.2.10', 'a documentation address'],
    ['2001:db8::1', 'a documentation address'],
    ['198.18.0.1', 'a reserved (benchmarking) address'],
    ['64:ff9b::10.0.0.1', 'a NAT64 form of 10.0.0.1, a private address'],
    ['2002:c0a8:0101::1', 'a 6to4 form of 192.168.1.1, a private address'],
    ['2001:0:4136:e378::1', 'a Teredo tunnel address'],
    ['::10.0.0.1', 'a deprecated IPv4-compatible address'],
    ['4000::1', 'not a global unicast address'],
    ['localhost', 'not an IP address'],
  ])('refuses %s: %s', (address, kind) => {
    expect(refusedAddressReason(address, DEFAULT_POLICY)).toBe(`${address} is ${kind}`);
  });

  it.each(['93.184.216.34', '8.8.8.8', '172.32.0.1', '100.128.0.1', '2606:4700::1', '2a00:1450:4001:81b::200e', '::ffff:93.184.216.34', '64:ff9b::93.184.216.34'])(
    'allows the public address %s',
    (address) => {
      expect(refusedAddressReason(address, DEFAULT_POLICY)).toBeUndefined();
    },
  );

  it('lets an operator allow a range, in either IPv4 notation, and nothing beyond it', () => {
    const loopbackOne: WebhookNetworkPolicy = { allowedCidrs: ['127.0.0.1/32'] };
    expect(refusedAddressReason('127.0.0.1', loopbackOne)).toBeUndefined();
    expect(refusedAddressReason('::ffff:127.0.0.1', loopbackOne)).toBeUndefined();
    expect(refusedAddressReason('127.0.0.2', loopbackOne)).toBe('127.0.0.2 is a loopback address');
    const internal: WebhookNetworkPolicy = { allowedCidrs: ['10.20.0.0/16', 'fd00::/8'] };
    expect(refusedAddressReason('10.20.3.4', internal)).toBeUndefined();
    expect(refusedAddressReason('fd12::1', internal)).toBeUndefined();
    expect(refusedAddressReason('10.21.0.1', internal)).toBe('10.21.0.1 is a private address');
  });
});

describe('cidrProblem', () => {
  it('accepts ranges and single addresses, and says what a bad entry should look like', () => {
    for (const good of ['10.0.0.0/8', 'fd00::/8', '127.0.0.1', '::1/128']) expect(cidrProblem(good)).toBeUndefined();
    for (const bad of ['10.0.0.0/33', '10.0.0/8', 'fd00::/129', 'example.com/24', '10.0.0.0/8/1', '10.0.0.0/']) {
      expect(cidrProblem(bad)).toBe(`"${bad}" is not an address range like 10.20.0.0/16, fd00::/8 or a single address`);
    }
  });
});

describe('resolveWebhookTarget', () => {
  it('refuses a name that resolves to loopback, saying how to fix it', async () => {
    const error = await refusal(resolveWebhookTarget('http://localhost:9/x', DEFAULT_POLICY, fakeLookup({ localhost: ['127.0.0.1'] })));
    expect(error.message).toBe(
      'webhook URL http://localhost:9/x: host localhost does not resolve to a public address: check its DNS record; webhooks go to public addresses only (an operator can allow a range with WEBHOOK_ALLOWED_CIDRS)',
    );
    expect(error.reason).toBe('localhost does not resolve to a public address');
  });

  it('says the same of a name that resolves to a private address and of one that does not resolve: which internal names exist stays unknown (red-team finding)', async () => {
    const lookup = fakeLookup({ 'redis.internal': ['10.0.0.9'] });
    const privateName = await refusal(resolveWebhookTarget('http://redis.internal/x', DEFAULT_POLICY, lookup));
    const missingName = await refusal(resolveWebhookTarget('http://nothing.internal/x', DEFAULT_POLICY, lookup));
    expect(privateName.message.replaceAll('redis', 'NAME')).toBe(missingName.message.replaceAll('nothing', 'NAME'));
    expect(privateName.reason.replaceAll('redis', 'NAME')).toBe(missingName.reason.replaceAll('nothing', 'NAME'));
  });

  it('refuses a name when any of its addresses is refused', async () => {
    const lookup = fakeLookup({ 'mixed.example': ['93.184.216.34', '10.0.0.5'] });
    const error = await refusal(resolveWebhookTarget('https://mixed.example/hook', DEFAULT_POLICY, lookup));
    expect(error.reason).toBe('mixed.example does not resolve to a public address');
    // A name's non-public address is not echoed (the tenant would learn internal DNS).
    expect(error.message).not.toContain('10.0.0.5');
  });

  it('returns the address to connect to for a public name', async () => {
    const lookup = fakeLookup({ 'hooks.example': ['2606:4700::1', '93.184.216.34'] });
    const target = await resolveWebhookTarget('https://hooks.example:8443/in?x=1', DEFAULT_POLICY, lookup);
    expect(target).toEqual({ url: new URL('https://hooks.example:8443/in?x=1'), address: '2606:4700::1', family: 6 });
  });

  it('uses an IP literal as it is, without a lookup', async () => {
    const lookup = fakeLookup({});
    await expect(resolveWebhookTarget('http://93.184.216.34/in', DEFAULT_POLICY, lookup)).resolves.toMatchObject({ address: '93.184.216.34', family: 4 });
    const error = await refusal(resolveWebhookTarget('http://[::1]:8080/in', DEFAULT_POLICY, lookup));
    expect(error.message).toMatch(/^webhook URL http:\/\/\[::1\]:8080\/in points at ::1, a loopback address;/);
    expect(lookup.calls).toEqual([]);
  });

  it('lets loopback through when the operator allows it', async () => {
    const target = await resolveWebhookTarget('http://localhost:9/x', { allowedCidrs: ['127.0.0.1/32'] }, fakeLookup({ localhost: ['127.0.0.1'] }));
    expect(target.address).toBe('127.0.0.1');
  });

  it('refuses other schemes, credentials, non-URLs and names that do not resolve', async () => {
    const lookup = fakeLookup({ 'hooks.example': ['93.184.216.34'] });
    expect((await refusal(resolveWebhookTarget('ftp://hooks.example/x', DEFAULT_POLICY, lookup))).message).toBe(
      'webhook URL ftp://hooks.example/x uses ftp:; webhooks are sent over http: or https: only',
    );
    const credentials = await refusal(resolveWebhookTarget('https://user:hunter2@hooks.example/x', DEFAULT_POLICY, lookup));
    expect(credentials.message).toBe(
      'webhook URL for host hooks.example carries credentials (user:password@); remove them and have the receiver check the podflow-signature header instead',
    );
    expect((await refusal(resolveWebhookTarget('not a url', DEFAULT_POLICY, lookup))).reason).toBe('not a URL');
    expect((await refusal(resolveWebhookTarget('https://nowhere.example/x', DEFAULT_POLICY, lookup))).message).toBe(
      `webhook URL https://nowhere.example/x: host nowhere.example does not resolve to a public address: check its DNS record; ${'webhooks go to public addresses only (an operator can allow a range with WEBHOOK_ALLOWED_CIDRS)'}`,
    );
  });
});

describe('hostAllowed', () => {
  it('matches any host, exact hosts, and subdomains of a wildcard but not its apex', () => {
    expect(hostAllowed('anything.example', ['*'])).toBe(true);
    expect(hostAllowed('Hooks.Example.COM.', ['hooks.example.com'])).toBe(true);
    expect(hostAllowed('other.example.com', ['hooks.example.com'])).toBe(false);
    expect(hostAllowed('a.b.example.com', ['*.example.com'])).toBe(true);
    expect(hostAllowed('example.com', ['*.example.com'])).toBe(false);
    expect(hostAllowed('badexample.com', ['*.example.com'])).toBe(false);
    expect(hostAllowed('[2606:4700::1]', ['2606:4700::1'])).toBe(true);
    expect(hostAllowed('hooks.example.com', [])).toBe(false);
  });
});

describe('temporary DNS failures', () => {
  it('are temporary refusals (retried later), unlike a name that does not exist', async () => {
    const failing = (code: string) => async () => Promise.reject(Object.assign(new Error(code), { code }));
    await expect(resolveWebhookTarget('http://slow.example/x', { allowedCidrs: [] }, failing('EAI_AGAIN'))).rejects.toMatchObject({ temporary: true, message: expect.stringContaining('could not be resolved just now (EAI_AGAIN)') });
    await expect(resolveWebhookTarget('http://nope.example/x', { allowedCidrs: [] }, failing('ENOTFOUND'))).rejects.toMatchObject({ temporary: false, message: expect.stringContaining('does not resolve to a public address') });
  });
});
