// Host packages the node needs, installed from Debian's archive when missing (root on Debian/Ubuntu).
import { run, say, which } from './sh.mjs';

const PACKAGES = [
  // [command that proves it is installed, Debian package]
  ['containerd', 'containerd'],
  ['runc', 'runc'],
  ['/usr/lib/cni/bridge', 'containernetworking-plugins'],
  ['debootstrap', 'debootstrap'],
  ['iptables', 'iptables'],
  ['conntrack', 'conntrack'],
  ['openssl', 'openssl'],
  ['gcc', 'gcc'],
];

/** Kubernetes 1.34 needs Go 1.24 or newer; Debian 12's golang-go (1.19) is too old, so we only check. */
export function ensureGo() {
  const version = which('go') ? run('go', ['env', 'GOVERSION'], { quiet: true }).trim() : undefined;
  const [major, minor] = (version?.match(/^go(\d+)\.(\d+)/) ?? []).slice(1).map(Number);
  if (!version || major < 1 || (major === 1 && minor < 24)) {
    throw new Error(`building Kubernetes needs Go 1.24 or newer on PATH (found ${version ?? 'none'}); install it from https://go.dev/dl and run cluster:up again`);
  }
}

export function ensureHostPackages() {
  ensureGo();
  const missing = PACKAGES.filter(([command]) => !which(command)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  if (!which('apt-get')) throw new Error(`missing host packages: ${missing.join(', ')}; install them with your package manager`);
  say(`installing ${missing.join(', ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-qq'], { env });
  run('apt-get', ['install', '-y', '-qq', ...missing], { env });
}
