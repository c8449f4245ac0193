import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { TENANT, execute, redisUrl, runToEnd, startStack, type Stack } from '../support/stack';
import { expectHealthy } from './support/api';

// Issue 10: tenant code tries to get out of its process sandbox, through the public API, on the
// embedded default (bubblewrap). Every test asserts containment and that the service is healthy
// afterwards. The per-execution cgroups, home quota and egress namespaces need root, which
// `npm test` and CI have.

jest.setTimeout(120_000);
const asRoot = process.getuid?.() === 0 ? it : it.skip;

const FILE_URL_SECRET = `file-secret-${randomBytes(12).toString('hex')}`;
const redisPassword = (): string => new URL(redisUrl()).password;

/** A Python node that collects every environment and command line it can see in /proc. */
const PY_PROC_SCAN = `import os
def main(args):
    seen = []
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        for name in ("environ", "cmdline"):
            try:
                seen.append(open(f"/proc/{pid}/{name}", "rb").read().decode("latin-1"))
            except OSError as exc:
                seen.append(type(exc).__name__)
    return {"seen": seen, "init": open("/proc/1/environ", "rb").read().decode("latin-1")}
`;
const JS_PROC_SCAN = `const fs = require('node:fs');
function main() {
  const seen = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p))) {
    for (const name of ['environ', 'cmdline']) {
      try { seen.push(fs.readFileSync('/proc/' + pid + '/' + name, 'latin1')); } catch (error) { seen.push(error.code); }
    }
  }
  return { seen, init: fs.readFileSync('/proc/1/environ', 'latin1') };
}`;

/** Python code that tries each `[host, port]` and says what happened. */
const pyConnect = (targets: Array<[string, number]>): string => `import socket
def main(args):
    out = {}
    for host, port in ${JSON.stringify(targets)}:
        try:
            with socket.create_connection((host, port), timeout=3):
                out[f"{host}:{port}"] = "connected"
        except OSError as exc:
            out[f"{host}:{port}"] = type(exc).__name__
    return out
`;
const jsConnect = (targets: Array<[string, number]>): string => `const net = require('node:net');
async function main() {
  const out = {};
  for (const [host, port] of ${JSON.stringify(targets)}) {
    out[host + ':' + port] = await new Promise((resolve) => {
      const socket = net.connect({ host, port, timeout: 3000 }, () => { socket.destroy(); resolve('connected'); });
      socket.on('error', (error) => resolve(error.code));
      socket.on('timeout', () => { socket.destroy(); resolve('ETIMEDOUT'); });
    });
  }
  return out;
}`;

function hostAddress(): string {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)!.address;
}

function hostProcessesWith(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}

/** A one-node workflow granted egress (the stack grants it to TENANT). */
function egressWorkflow(language: string, code: string) {
  return { id: 'egress-probe', nodes: [{ id: 'probe', language, code, network: true }] };
}

describe('process sandbox containment (issue 10)', () => {
  let stack: Stack;
  let server: Server;
  let serverPort = 0;
  let connections = 0;

  beforeAll(async () => {
    // A host service on every interface: what an attacker would look for.
    server = createServer((socket) => {
      connections += 1;
      socket.end('hello');
    });
    await new Promise<void>((listening) => server.listen(0, '0.0.0.0', listening));
    serverPort = (server.address() as { port: number }).port;
    stack = await startStack({
      env: { EGRESS_TENANTS: TENANT, FILE_URL_SECRET },
      workerEnv: { SANDBOX_ISOLATION: 'bubblewrap', SANDBOX_HOME_SIZE_MB: '16', SANDBOX_MAX_MEMORY_MB: '1024' },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await new Promise<void>((closed) => (server ? server.close(() => closed()) : closed()));
  });
  afterEach(() => expectHealthy(stack));

  describe('item 1: no secret reaches a sandbox', () => {
    it.each([
      ['python', PY_PROC_SCAN],
      ['javascript', JS_PROC_SCAN],
    ])('%s: no environment or command line in /proc holds a worker secret', async (language, code) => {
      const result = await execute(stack, language, code);
      expect(result.status).toBe('succeeded');
      const { seen, init } = result.output as { seen: string[]; init: string };
      const everything = seen.join('\n');
      for (const secret of [FILE_URL_SECRET, redisPassword(), 'test-key=acme', 'other-key']) expect(everything).not.toContain(secret);
      expect(everything).not.toMatch(/REDIS_URL|PODFLOW_API_KEYS|FILE_URL_SECRET|AWS_SECRET_ACCESS_KEY/);
      // bwrap's own process (pid 1 here) was spawned with the sandbox environment only.
      expect(init.split('\0').filter(Boolean).map((v) => v.split('=')[0]).sort()).toEqual(expect.arrayContaining(['HOME', 'PATH']));
      expect(init).not.toContain('QUEUE_PREFIX');
    });
  });

  describe('item 2: network', () => {
    it.each([
      ['python', pyConnect],
      ['javascript', jsConnect],
    ])('%s: without a grant there is no network at all: no coordinator, no Redis, no host service', async (language, connect) => {
      const coordinatorPort = Number(new URL(stack.url).port);
      const redisPort = Number(new URL(redisUrl()).port);
      const result = await execute(stack, language, connect([['127.0.0.1', coordinatorPort], ['127.0.0.1', redisPort], [hostAddress(), serverPort]]));
      expect(result.status).toBe('succeeded');
      for (const outcome of Object.values(result.output as Record<string, string>)) expect(outcome).not.toBe('connected');
      expect(connections).toBe(0);
    });

    asRoot.each([
      ['python', pyConnect],
      ['javascript', jsConnect],
    ])('%s: granted egress never reaches the host: loopback, its own address, the slirp gateway, cloud metadata', async (language, connect) => {
      const redisPort = Number(new URL(redisUrl()).port);
      const targets: Array<[string, number]> = [
        ['127.0.0.1', redisPort],
        [hostAddress(), serverPort],
        [hostAddress(), redisPort],
        ['10.0.2.2', redisPort],
        ['169.254.169.254', 80],
        ['10.255.255.1', 80],
      ];
      const run = await runToEnd(stack, egressWorkflow(language, connect(targets)));
      expect(run.nodes.probe).toMatchObject({ status: 'succeeded' });
      const output = run.nodes.probe!.output as Record<string, string>;
      expect(Object.keys(output)).toHaveLength(targets.length);
      for (const [target, outcome] of Object.entries(output)) expect([target, outcome]).not.toEqual([target, 'connected']);
      // Private ranges and the host's own subnet are prohibited routes: refused at once.
      expect(output[`${hostAddress()}:${serverPort}`]).toMatch(/PermissionError|EACCES/);
      expect(output['169.254.169.254:80']).toMatch(/PermissionError|EACCES/);
      expect(connections).toBe(0);
    });
  });

  describe('item 6: one budget per execution', () => {
    asRoot('six children of 150 MiB under the 512 MiB limit: the kernel stops them together', async () => {
      const code = `import subprocess, sys
def main(args):
    hog = "import time; b = bytearray(bytes([120])) * (150 * 1024 * 1024); time.sleep(2)"
    children = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(6)]
    return {"codes": [c.wait() for c in children]}
`;
      const result = await execute(stack, 'python', code, {}, '30s');
      if (result.status === 'failed') expect(result.error!.code).toBe('MEMORY_LIMIT_EXCEEDED');
      else expect((result.output!.codes as number[]).filter((c) => c === -9).length).toBeGreaterThanOrEqual(3);
    });

    it('a memory request above the operator maximum runs with the maximum, and the result says so', async () => {
      const run = await runToEnd(stack, { id: 'greedy', nodes: [{ id: 'big', language: 'python', code: 'def main(args):\n    return {}\n', resources: { memory: '1Ti' } }] });
      expect(run.nodes.big).toMatchObject({ status: 'succeeded', warnings: [expect.stringContaining('resources.memory 1Ti is above the operator maximum')] });
    });

    it('/dev is read-only and /dev/shm and /tmp have a size', async () => {
      const code = `def main(args):
    out = {}
    for path, size in [("/dev/evil", 1), ("/dev/shm/big", 64 * 1024 * 1024), ("/tmp/big", 128 * 1024 * 1024)]:
        try:
            with open(path, "wb") as f:
                f.write(b"x" * size)
            out[path] = "written"
        except OSError as exc:
            out[path] = exc.strerror
    return out
`;
      const result = await execute(stack, 'python', code);
      expect(result.output).toEqual({ '/dev/evil': 'Read-only file system', '/dev/shm/big': 'No space left on device', '/tmp/big': 'No space left on device' });
    });

    asRoot('/home/user stops at its size (SANDBOX_HOME_SIZE_MB) while the code runs', async () => {
      const result = await execute(stack, 'javascript', "const fs = require('node:fs');\nfunction main() { try { fs.writeFileSync('big.bin', Buffer.alloc(64 * 1024 * 1024, 1)); return { error: null }; } catch (error) { return { error: error.code }; } }");
      expect(result.output).toEqual({ error: 'ENOSPC' });
    });
  });

  describe('item 10: seccomp', () => {
    it('python: unshare, mount, ptrace and keyctl fail with EPERM', async () => {
      const code = `import ctypes
def main(args):
    libc = ctypes.CDLL(None, use_errno=True)
    calls = {"unshare": lambda: libc.unshare(0x40000000), "mount": lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None), "ptrace": lambda: libc.ptrace(16, 1, 0, 0), "keyctl": lambda: libc.syscall(250, 0, 0, 0, 0)}
    return {name: (call(), ctypes.get_errno()) for name, call in calls.items()}
`;
      const result = await execute(stack, 'python', code);
      expect(result.output).toEqual({ unshare: [-1, 1], mount: [-1, 1], ptrace: [-1, 1], keyctl: [-1, 1] });
    });

    it('javascript: a child process cannot make namespaces either', async () => {
      const result = await execute(stack, 'javascript', "const { spawnSync } = require('node:child_process');\nfunction main() { const r = spawnSync('unshare', ['--user', '--map-root-user', 'true'], { encoding: 'utf8' }); return { status: r.status, stderr: r.stderr.trim() }; }");
      expect(result.output).toMatchObject({ status: 1, stderr: expect.stringMatching(/Operation not permitted/) });
    });
  });

  describe('escapes that must stay closed', () => {
    it('a fork bomb ends the execution, not the host', async () => {
      const result = await execute(stack, 'python', 'import os\ndef main(args):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n', {}, '3s');
      expect(result.status).toBe('failed');
      expect(['EXECUTION_TIMEOUT', 'MEMORY_LIMIT_EXCEEDED', 'CODE_EXECUTION_FAILED']).toContain(result.error!.code);
    });

    it('kill -9 -1 kills only the sandbox, and the execution still gets its one result', async () => {
      const result = await execute(stack, 'python', 'import os, signal\ndef main(args):\n    os.kill(-1, signal.SIGKILL)\n    return {"survived": True}\n');
      expect(result.status).toBe('failed');
      expect(result.error!.code).toBe('CODE_EXECUTION_FAILED');
      expect(stack.workers.every((worker) => worker.exitCode === null)).toBe(true);
    });

    it('a double-forked daemon dies with the execution at its timeout', async () => {
      const marker = `podflow-daemon-${randomBytes(6).toString('hex')}`;
      const code = `import os, subprocess, sys, time
def main(args):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "${marker}"])
        os._exit(0)
    time.sleep(60)
`;
      const result = await execute(stack, 'python', code, {}, '2s');
      expect(result.error!.code).toBe('EXECUTION_TIMEOUT');
      expect(hostProcessesWith(marker)).toEqual([]);
    });

    it('a symlink to a host file is not uploaded', async () => {
      const result = await execute(stack, 'python', 'import os\ndef main(args):\n    os.symlink("/etc/passwd", "passwd")\n    open("real.txt", "w").write("ok")\n    return {}\n');
      expect(result.status).toBe('succeeded');
      expect((result.files?.elements ?? []).map((file) => file.name)).toEqual(['real.txt']);
    });

    it('a Unix socket in /tmp or the abstract namespace is not shared between sandboxes', async () => {
      const listener = `import socket, time
def main(args):
    a = socket.socket(socket.AF_UNIX); a.bind("/tmp/podflow.sock"); a.listen(1)
    b = socket.socket(socket.AF_UNIX); b.bind("\\0podflow-abstract"); b.listen(1)
    time.sleep(4)
    return {}
`;
      const dialer = `import socket, time
def main(args):
    time.sleep(1)
    out = {}
    for name, address in [("tmp", "/tmp/podflow.sock"), ("abstract", "\\0podflow-abstract")]:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(address); out[name] = "connected"
        except OSError as exc:
            out[name] = type(exc).__name__
    return out
`;
      const [, dialed] = await Promise.all([execute(stack, 'python', listener), execute(stack, 'python', dialer)]);
      expect(dialed.output).toEqual({ tmp: 'FileNotFoundError', abstract: 'ConnectionRefusedError' });
    });
  });
});
