// etcd, kube-apiserver, kube-controller-manager and kube-scheduler, as flags. etcd and the
// apiserver talk mutual TLS; every component authenticates with its own client certificate.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { binary } from './binaries.mjs';
import { APISERVER_PORT, CONFIG_DIR, ETCD_CLIENT_PORT, ETCD_PEER_PORT, SERVICE_CIDR, STATE_DIR } from './config.mjs';
import { certificateKubeconfig, pki } from './pki.mjs';

/** GET over TLS with a client certificate of the cluster PKI; resolves { status, body }. */
export function httpsGet(url, certificate) {
  return new Promise((resolveGet, reject) => {
    const req = request(url, {
      ca: readFileSync(pki('ca.crt')),
      cert: readFileSync(pki(`${certificate}.crt`)),
      key: readFileSync(pki(`${certificate}.key`)),
      timeout: 5000,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolveGet({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export function etcdCommand() {
  const peer = `http://127.0.0.1:${ETCD_PEER_PORT}`;
  const client = `https://127.0.0.1:${ETCD_CLIENT_PORT}`;
  return [binary('etcd'), [
    '--name=podflow', `--data-dir=${join(STATE_DIR, 'etcd')}`,
    `--listen-client-urls=${client}`, `--advertise-client-urls=${client}`,
    // The single member's peer port stays on loopback and has no peers; plain HTTP is enough there.
    `--listen-peer-urls=${peer}`, `--initial-advertise-peer-urls=${peer}`, `--initial-cluster=podflow=${peer}`,
    `--cert-file=${pki('etcd-server.crt')}`, `--key-file=${pki('etcd-server.key')}`,
    '--client-cert-auth', `--trusted-ca-file=${pki('ca.crt')}`,
    '--quota-backend-bytes=2147483648', '--log-level=warn',
  ]];
}

export async function etcdHealthy() {
  const { status, body } = await httpsGet(`https://127.0.0.1:${ETCD_CLIENT_PORT}/health`, 'apiserver-etcd-client');
  return status === 200 && JSON.parse(body).health === 'true';
}

export function apiserverCommand(nodeIp) {
  return [binary('kube-apiserver'), [
    `--advertise-address=${nodeIp}`, '--bind-address=0.0.0.0', `--secure-port=${APISERVER_PORT}`,
    `--etcd-servers=https://127.0.0.1:${ETCD_CLIENT_PORT}`,
    `--etcd-cafile=${pki('ca.crt')}`, `--etcd-certfile=${pki('apiserver-etcd-client.crt')}`, `--etcd-keyfile=${pki('apiserver-etcd-client.key')}`,
    `--client-ca-file=${pki('ca.crt')}`,
    `--tls-cert-file=${pki('apiserver.crt')}`, `--tls-private-key-file=${pki('apiserver.key')}`,
    // The apiserver verifies the kubelet's serving certificate: logs, exec and attach over checked TLS.
    `--kubelet-certificate-authority=${pki('ca.crt')}`,
    `--kubelet-client-certificate=${pki('apiserver-kubelet-client.crt')}`, `--kubelet-client-key=${pki('apiserver-kubelet-client.key')}`,
    '--kubelet-preferred-address-types=InternalIP,Hostname',
    '--authorization-mode=Node,RBAC',
    // PodSecurity, ServiceAccount, ResourceQuota, LimitRanger ... are on by default; NodeRestriction is not.
    '--enable-admission-plugins=NodeRestriction',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki('sa.pub')}`, `--service-account-signing-key-file=${pki('sa.key')}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    '--allow-privileged=false', '--profiling=false', '--v=1',
  ]];
}

export async function apiserverReady() {
  const { status } = await httpsGet(`https://127.0.0.1:${APISERVER_PORT}/readyz`, 'admin');
  return status === 200;
}

function writeKubeconfig(name, user, certificate) {
  mkdirSync(CONFIG_DIR, { recursive: true });
  const path = join(CONFIG_DIR, `${name}.kubeconfig`);
  writeFileSync(path, certificateKubeconfig(user, certificate), { mode: 0o600 });
  return path;
}

export function controllerManagerCommand() {
  const kubeconfig = writeKubeconfig('controller-manager', 'system:kube-controller-manager', 'controller-manager');
  return [binary('kube-controller-manager'), [
    `--kubeconfig=${kubeconfig}`, `--authentication-kubeconfig=${kubeconfig}`, `--authorization-kubeconfig=${kubeconfig}`,
    '--bind-address=127.0.0.1', '--leader-elect=false',
    `--root-ca-file=${pki('ca.crt')}`, `--service-account-private-key-file=${pki('sa.key')}`,
    '--use-service-account-credentials=true',
    `--cluster-signing-cert-file=${pki('ca.crt')}`, `--cluster-signing-key-file=${pki('ca.key')}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`, '--v=1',
  ]];
}

export function schedulerCommand() {
  const kubeconfig = writeKubeconfig('scheduler', 'system:kube-scheduler', 'scheduler');
  return [binary('kube-scheduler'), [
    `--kubeconfig=${kubeconfig}`, `--authentication-kubeconfig=${kubeconfig}`, `--authorization-kubeconfig=${kubeconfig}`,
    '--bind-address=127.0.0.1', '--leader-elect=false', '--v=1',
  ]];
}
