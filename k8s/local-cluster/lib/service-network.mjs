// Services inside the cluster, as a real cluster has them: kube-proxy (iptables mode) gives every
// ClusterIP Service its virtual address, and CoreDNS answers `<service>.<namespace>.svc.cluster.local`.
// Both run on the host like the kubelet. CoreDNS listens only on a link-local address of this host
// (the address NodeLocal DNSCache uses): pods reach it through their default route, the host
// reaches it directly, and nothing outside this machine can. Names outside the cluster are
// forwarded to the host's own resolver, so layer builders still reach the package registries.
import { Resolver } from 'node:dns/promises';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { binary } from './binaries.mjs';
import { httpsGet } from './control-plane.mjs';
import { CLUSTER_DNS_IP, CLUSTER_DNS_LABEL, CLUSTER_DOMAIN, CONFIG_DIR, KUBERNETES_SERVICE_IP, NODE_NAME, POD_CIDR, POD_GATEWAY_IP } from './config.mjs';
import { certificateKubeconfig } from './pki.mjs';
import { tryRun, writeIfChanged } from './sh.mjs';

/** Where CoreDNS's `ready` plugin answers (host loopback only). */
const COREDNS_READY = '127.0.0.1:18181';

/**
 * kube-proxy's command line, and whether its configuration changed since it was last written (a
 * running kube-proxy must then be restarted: it exits by itself when its file changes).
 */
export function kubeProxyCommand() {
  mkdirSync(CONFIG_DIR, { recursive: true });
  const kubeconfig = join(CONFIG_DIR, 'kube-proxy.kubeconfig');
  const credentialsChanged = writeIfChanged(kubeconfig, certificateKubeconfig('system:kube-proxy', 'kube-proxy'), 0o600);
  const config = join(CONFIG_DIR, 'kube-proxy.yaml');
  const configChanged = writeIfChanged(config, `${JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig },
    hostnameOverride: NODE_NAME,
    mode: 'iptables',
    clusterCIDR: POD_CIDR,
    bindAddress: '127.0.0.1',
    healthzBindAddress: '127.0.0.1:10256',
    metricsBindAddress: '127.0.0.1:10249',
    // A shared machine's settings are not ours to change: leave the conntrack table size and
    // timeouts alone (0 keeps the host's), serve NodePorts only on the pod bridge's address, and
    // no NodePorts on localhost, which would set net.ipv4.conf.all.route_localnet=1 (loopback
    // addresses routable from the network) and leave it set after `down`.
    conntrack: { maxPerCore: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    nodePortAddresses: [`${POD_GATEWAY_IP}/32`],
    iptables: { localhostNodePorts: false },
  }, null, 2)}\n`);
  return [binary('kube-proxy'), [`--config=${config}`, '--v=1'], credentialsChanged || configChanged];
}

/** Removes the iptables chains kube-proxy created (it leaves them behind when stopped). */
export function cleanUpKubeProxyRules() {
  tryRun(binary('kube-proxy'), ['--cleanup', '--v=0']);
}

/** Read access to what the `kubernetes` plugin watches, for CoreDNS's certificate identity. */
export function coreDnsRbacManifest() {
  const name = 'podflow:coredns';
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name },
        rules: [
          { apiGroups: [''], resources: ['endpoints', 'services', 'namespaces'], verbs: ['list', 'watch'] },
          { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name }],
      },
    ],
  });
}

/**
 * The address CoreDNS binds to, on the loopback interface with a label of its own (idempotent).
 * Loopback rather than a dummy interface: some kernels here have no `dummy` module, and a local
 * address is delivered locally whichever interface carries it.
 */
export function ensureDnsAddress() {
  if (!(tryRun('ip', ['-4', 'addr', 'show', 'dev', 'lo']) ?? '').includes(`${CLUSTER_DNS_IP}/32`)) {
    tryRun('ip', ['addr', 'add', `${CLUSTER_DNS_IP}/32`, 'dev', 'lo', 'label', CLUSTER_DNS_LABEL]);
  }
  if (!(tryRun('ip', ['-4', 'addr', 'show', 'dev', 'lo']) ?? '').includes(`${CLUSTER_DNS_IP}/32`)) {
    throw new Error(`could not add ${CLUSTER_DNS_IP}/32 to the loopback interface (ip addr add); the cluster DNS listens there`);
  }
}

export function removeDnsAddress() {
  tryRun('ip', ['addr', 'del', `${CLUSTER_DNS_IP}/32`, 'dev', 'lo']);
}

/**
 * CoreDNS's command line and whether its configuration changed. The address is on `lo`, but Linux
 * answers ARP for it on every interface, so the `acl` plugin refuses queries from anywhere but
 * pods and this host: it is no open resolver for the network, and lists nothing to it.
 */
export function coreDnsCommand(nodeIp) {
  mkdirSync(CONFIG_DIR, { recursive: true });
  const kubeconfig = join(CONFIG_DIR, 'coredns.kubeconfig');
  const credentialsChanged = writeIfChanged(kubeconfig, certificateKubeconfig('podflow:coredns', 'coredns'), 0o600);
  const corefile = join(CONFIG_DIR, 'Corefile');
  const configChanged = writeIfChanged(corefile, `# Generated by k8s/local-cluster/lib/service-network.mjs.
.:53 {
    bind ${CLUSTER_DNS_IP}
    acl {
        allow net ${POD_CIDR} 127.0.0.0/8 ${CLUSTER_DNS_IP}/32 ${nodeIp}/32
        block
    }
    errors
    ready ${COREDNS_READY}
    kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
        kubeconfig ${kubeconfig} podflow:coredns
        pods disabled
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    forward . /etc/resolv.conf
    cache 30
}
`);
  return [binary('coredns'), ['-conf', corefile], credentialsChanged || configChanged];
}

export async function coreDnsReady() {
  const response = await fetch(`http://${COREDNS_READY}/ready`).catch(() => undefined);
  return response?.status === 200;
}

/**
 * The promise of this module: the `kubernetes` Service resolves, and its ClusterIP reaches the API
 * server itself (verified TLS and an answer, not just a TCP connection: on machines whose egress
 * goes through a transparent proxy, any address accepts connections).
 */
export async function checkServiceNetwork() {
  const resolver = new Resolver({ timeout: 2_000, tries: 2 });
  resolver.setServers([CLUSTER_DNS_IP]);
  const name = `kubernetes.default.svc.${CLUSTER_DOMAIN}`;
  const addresses = await resolver.resolve4(name).catch((error) => {
    throw new Error(`cluster DNS at ${CLUSTER_DNS_IP} does not resolve ${name}: ${error.message}; see logs/coredns.log`);
  });
  if (!addresses.includes(KUBERNETES_SERVICE_IP)) throw new Error(`cluster DNS resolves ${name} to ${addresses.join(', ')}, not ${KUBERNETES_SERVICE_IP}`);
  const { status } = await httpsGet(`https://${KUBERNETES_SERVICE_IP}/readyz`, 'admin').catch((error) => {
    throw new Error(`the kubernetes Service https://${KUBERNETES_SERVICE_IP}: ${error.message} (kube-proxy rules missing?); see logs/kube-proxy.log`);
  });
  if (status !== 200) throw new Error(`the kubernetes Service https://${KUBERNETES_SERVICE_IP}/readyz answered ${status}`);
}
