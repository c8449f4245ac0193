// The cluster's PKI with openssl: one CA, a serving certificate for etcd, the apiserver and the
// kubelet, and a client certificate per component, plus the service-account signing key. The
// kubelet's serving certificate is signed by the same CA and the apiserver verifies it
// (--kubelet-certificate-authority), so logs, exec and attach go over verified TLS as in a real
// cluster. Certificates are made once per cluster directory and reused by every `cluster:up`.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { APISERVER_PORT, KUBERNETES_SERVICE_IP, NODE_NAME, PKI_DIR } from './config.mjs';
import { run } from './sh.mjs';

const DAYS = '3650';
const openssl = (args) => run('openssl', args, { quiet: true });

export const pki = (name) => join(PKI_DIR, name);

function ensureCa() {
  if (existsSync(pki('ca.crt'))) return;
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', pki('ca.key')]);
  openssl(['req', '-x509', '-new', '-key', pki('ca.key'), '-sha256', '-days', DAYS, '-subj', '/CN=podflow-local-cluster-ca', '-out', pki('ca.crt')]);
}

/**
 * A certificate signed by the cluster CA. `organization` becomes the Kubernetes group; `hosts`
 * become subject alternative names (IP addresses or DNS names) for serving certificates.
 */
function ensureCertificate(name, { commonName, organization, hosts = [], usage }) {
  if (existsSync(pki(`${name}.crt`))) return;
  const subject = `${organization ? `/O=${organization}` : ''}/CN=${commonName}`;
  const sans = hosts.map((host) => (/^[\d.]+$/.test(host) ? `IP:${host}` : `DNS:${host}`)).join(',');
  const extensions = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${usage === 'server' ? 'serverAuth' : usage === 'client' ? 'clientAuth' : 'serverAuth,clientAuth'}`,
    ...(sans ? [`subjectAltName=${sans}`] : []),
  ].join('\n');
  writeFileSync(pki(`${name}.ext`), `${extensions}\n`);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', pki(`${name}.key`)]);
  openssl(['req', '-new', '-key', pki(`${name}.key`), '-subj', subject, '-out', pki(`${name}.csr`)]);
  openssl(['x509', '-req', '-in', pki(`${name}.csr`), '-CA', pki('ca.crt'), '-CAkey', pki('ca.key'), '-CAcreateserial',
    '-days', DAYS, '-sha256', '-extfile', pki(`${name}.ext`), '-out', pki(`${name}.crt`)]);
}

/**
 * Certificates that name this machine are re-issued when its address or name changed since they
 * were made (a cluster directory carried to another VM, a new DHCP lease).
 */
function forgetCertificatesOfAnotherHost(nodeIp) {
  const identityFile = pki('node-identity.json');
  const identity = JSON.stringify({ nodeIp, nodeName: NODE_NAME });
  if (existsSync(identityFile) && readFileSync(identityFile, 'utf8') !== identity) {
    for (const name of ['apiserver', 'kubelet-server', 'kubelet-client']) rmSync(pki(`${name}.crt`), { force: true });
  }
  writeFileSync(identityFile, identity);
}

/** Creates every key and certificate the cluster needs (only those missing). */
export function ensurePki(nodeIp) {
  mkdirSync(PKI_DIR, { recursive: true, mode: 0o700 });
  ensureCa();
  forgetCertificatesOfAnotherHost(nodeIp);
  const local = ['127.0.0.1', 'localhost'];
  ensureCertificate('etcd-server', { commonName: 'etcd', hosts: local, usage: 'both' });
  ensureCertificate('apiserver-etcd-client', { commonName: 'kube-apiserver-etcd-client', usage: 'client' });
  ensureCertificate('apiserver', {
    commonName: 'kube-apiserver',
    usage: 'server',
    hosts: [...local, nodeIp, NODE_NAME, KUBERNETES_SERVICE_IP, 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
  });
  ensureCertificate('apiserver-kubelet-client', { commonName: 'kube-apiserver-kubelet-client', organization: 'system:masters', usage: 'client' });
  ensureCertificate('admin', { commonName: 'podflow-admin', organization: 'system:masters', usage: 'client' });
  ensureCertificate('controller-manager', { commonName: 'system:kube-controller-manager', usage: 'client' });
  ensureCertificate('scheduler', { commonName: 'system:kube-scheduler', usage: 'client' });
  ensureCertificate('kubelet-client', { commonName: `system:node:${NODE_NAME}`, organization: 'system:nodes', usage: 'client' });
  // kube-proxy's identity is bound to system:node-proxier by the apiserver's default RBAC.
  ensureCertificate('kube-proxy', { commonName: 'system:kube-proxy', usage: 'client' });
  ensureCertificate('coredns', { commonName: 'podflow:coredns', usage: 'client' });
  ensureCertificate('kubelet-server', { commonName: `system:node:${NODE_NAME}`, hosts: [...local, nodeIp, NODE_NAME], usage: 'server' });
  if (!existsSync(pki('sa.key'))) {
    openssl(['genrsa', '-out', pki('sa.key'), '2048']);
    openssl(['rsa', '-in', pki('sa.key'), '-pubout', '-out', pki('sa.pub')]);
  }
}

const base64 = (file) => readFileSync(file).toString('base64');

/** A kubeconfig that authenticates with a client certificate of the cluster PKI (embedded). */
export function certificateKubeconfig(user, certificate, server = `https://127.0.0.1:${APISERVER_PORT}`) {
  return kubeconfig(server, user, {
    'client-certificate-data': base64(pki(`${certificate}.crt`)),
    'client-key-data': base64(pki(`${certificate}.key`)),
  });
}

/** A kubeconfig that authenticates with a bearer token (the worker's ServiceAccount). */
export function tokenKubeconfig(user, token, namespace, server = `https://127.0.0.1:${APISERVER_PORT}`) {
  return kubeconfig(server, user, { token }, namespace);
}

function kubeconfig(server, user, credentials, namespace) {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'podflow-local', cluster: { server, 'certificate-authority-data': base64(pki('ca.crt')) } }],
    users: [{ name: user, user: credentials }],
    contexts: [{ name: user, context: { cluster: 'podflow-local', user, ...(namespace ? { namespace } : {}) } }],
    'current-context': user,
  };
  // JSON is valid YAML, and kubectl and @kubernetes/client-node read it as a kubeconfig.
  return `${JSON.stringify(config, null, 2)}\n`;
}
