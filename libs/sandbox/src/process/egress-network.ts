import { spawn, type ChildProcess } from 'node:child_process';
import { readlink } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { cidrOfInterface, egressRouteCommands, SLIRP } from './egress-routes';

/**
 * The network namespace of one execution granted egress: created empty by a holder process,
 * wired to the world by slirp4netns (user-mode networking: the host's loopback is disabled, and
 * the sandbox has no interface on any host network), and given the routing table of
 * `egress-routes.ts`. Only root can set this up; `probe()` says whether this host can.
 */

export interface EgressBinaries {
  unshare: string;
  setpriv: string;
  sleep: string;
  slirp4netns: string;
  nsenter: string;
  ip: string;
}

export interface EgressNetworkOptions {
  binaries: EgressBinaries;
  /** Ranges the operator re-opens for sandboxes (`SANDBOX_EGRESS_ALLOW_CIDRS`). */
  allowedCidrs: string[];
}

/** A ready namespace; `close()` stops slirp4netns and the holder, and the namespace is gone. */
export interface EgressNamespace {
  /** `/proc/<holder>/ns/net`, entered with `nsenter --net=`. */
  readonly path: string;
  close(): Promise<void>;
}

const SETUP_TIMEOUT_MS = 10_000;

export class EgressNetworks {
  constructor(private readonly options: EgressNetworkOptions) {}

  /** The host's own IPv4 subnets, which sandboxes never reach (read at each open: interfaces change). */
  static hostSubnets(): string[] {
    const subnets: string[] = [];
    for (const addresses of Object.values(networkInterfaces())) {
      for (const address of addresses ?? []) {
        if (address.family !== 'IPv4') continue;
        const cidr = cidrOfInterface(address.address, address.netmask);
        if (cidr) subnets.push(cidr);
      }
    }
    return subnets;
  }

  /** Creates one namespace; throws with the failing step's own words when it cannot. */
  async open(): Promise<EgressNamespace> {
    const { binaries } = this.options;
    const commands = egressRouteCommands({ hostSubnets: EgressNetworks.hostSubnets(), allowedCidrs: this.options.allowedCidrs });
    // The holder dies with the worker (pdeathsig), and the namespace with the holder.
    const holder = spawn(binaries.setpriv, ['--pdeathsig', 'KILL', '--', binaries.unshare, '--net', '--', binaries.sleep, 'infinity'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const processes: ChildProcess[] = [holder];
    const close = async (): Promise<void> => {
      for (const child of processes) child.kill('SIGKILL');
      await Promise.all(processes.map((child) => exited(child)));
    };
    try {
      const path = await holderNamespace(holder);
      // --exit-fd: slirp4netns exits when fd 4 closes, which the kernel does if the worker dies.
      const slirp = spawn(
        binaries.slirp4netns,
        ['--disable-host-loopback', '--mtu', String(SLIRP.mtu), '--ready-fd', '3', '--exit-fd', '4', '--enable-sandbox', '--enable-seccomp', String(holder.pid), SLIRP.device],
        { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] },
      );
      processes.push(slirp);
      await slirpReady(slirp);
      await runWithInput(binaries.nsenter, [`--net=${path}`, '--', binaries.ip, '-batch', '-'], `${commands.join('\n')}\n`);
      return { path, close };
    } catch (error) {
      await close();
      throw new Error(`could not set up the sandbox's egress network: ${(error as Error).message}`);
    }
  }
}

/** Waits until the holder has left the worker's namespace (unshare done, sleep running). */
async function holderNamespace(holder: ChildProcess): Promise<string> {
  const own = await readlink('/proc/self/ns/net');
  const deadline = Date.now() + SETUP_TIMEOUT_MS;
  const stderr = collect(holder.stderr);
  while (Date.now() < deadline) {
    if (holder.exitCode !== null || holder.signalCode !== null || holder.pid === undefined) {
      throw new Error(`unshare --net failed: ${stderr().trim() || `exit ${holder.exitCode ?? holder.signalCode}`}`);
    }
    const current = await readlink(`/proc/${holder.pid}/ns/net`).catch(() => own);
    if (current !== own) return `/proc/${holder.pid}/ns/net`;
    await new Promise((wake) => setTimeout(wake, 2));
  }
  throw new Error(`unshare --net did not create a namespace within ${SETUP_TIMEOUT_MS} ms`);
}

/** slirp4netns writes "1" on its ready fd once the tap device exists in the namespace. */
function slirpReady(slirp: ChildProcess): Promise<void> {
  const stderr = collect(slirp.stderr);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`slirp4netns was not ready within ${SETUP_TIMEOUT_MS} ms: ${stderr().trim()}`)), SETUP_TIMEOUT_MS);
    (slirp.stdio[3] as Readable).once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    slirp.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`slirp4netns could not start: ${error.message}; install it (apt-get install slirp4netns)`));
    });
    slirp.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`slirp4netns exited with ${code ?? signal}: ${stderr().trim()}`));
    });
    // Our end of its exit fd stays open for the namespace's lifetime; nothing is written to it.
    (slirp.stdio[4] as Writable).on('error', () => undefined);
  });
}

function runWithInput(command: string, args: string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    const stderr = collect(child.stderr);
    child.once('error', (error) => reject(new Error(`${command} could not start: ${error.message}`)));
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${[command, ...args].join(' ')} exited with ${code}: ${stderr().trim()}`))));
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(input);
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function collect(stream: Readable | null): () => string {
  let text = '';
  stream?.on('data', (chunk: Buffer) => {
    if (text.length < 4096) text += chunk.toString('utf8');
  });
  return () => text;
}
