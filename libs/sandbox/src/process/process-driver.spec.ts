import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { SandboxOutcome, SandboxRequest } from '../driver';
import { LocalLayerBackend } from '../layers/local-layer-backend';
import { forgedPythonAnswer } from '../testing/forged-answer';
import { BUILT_LAUNCHER } from './launch';
import { ProcessDriver } from './process-driver';

// Real processes in a real bubblewrap sandbox: nothing here is mocked.
jest.setTimeout(60_000);

const MIB = 1024 * 1024;
let workRoot: string;
let driver: ProcessDriver;
const warnings: string[] = [];
const outcomes: SandboxOutcome[] = [];

beforeAll(async () => {
  workRoot = await mkdtemp(join(tmpdir(), 'podflow-sandbox-spec-'));
  // Sandboxes running as dedicated uids must be able to traverse it (mkdtemp makes it 0700).
  await chmod(workRoot, 0o711);
  driver = new ProcessDriver({
    isolation: 'bubblewrap',
    workRoot,
    memoryLimitBytes: 256 * MIB,
    logger: { warn: (_obj, msg) => warnings.push(msg), info: () => undefined },
  });
});

afterAll(async () => {
  await Promise.all(outcomes.map((outcome) => outcome.dispose()));
  await driver.close();
  await rm(workRoot, { recursive: true, force: true });
});

function request(overrides: Partial<SandboxRequest> & Pick<SandboxRequest, 'code'>): SandboxRequest {
  return {
    executionId: `run-1.node-1.${randomBytes(4).toString('hex')}`,
    tenantId: 'tenant-a',
    runId: 'run-1',
    nodeId: 'node-1',
    attempt: 1,
    language: 'python',
    args: {},
    timeoutMs: 20_000,
    dependencies: [],
    network: false,
    ...overrides,
  };
}

async function run(overrides: Partial<SandboxRequest> & Pick<SandboxRequest, 'code'>, signal = new AbortController().signal): Promise<SandboxOutcome> {
  const outcome = await driver.execute(request(overrides), signal);
  outcomes.push(outcome);
  return outcome;
}

async function processesWithMarker(marker: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(marker)) found.push(`${pid}: ${cmdline.replace(/\0/g, ' ')}`);
  }
  return found;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('ProcessDriver with bubblewrap', () => {
  it('reports bubblewrap isolation with rlimits', async () => {
    const report = await driver.init();
    expect(report).toMatchObject({ isolation: 'bubblewrap', rlimits: true });
    if (process.getuid?.() === 0) expect(report).toMatchObject({ dedicatedUids: true, launcher: true, spawnServer: true });
  });

  it('runs a Python hello world', async () => {
    const outcome = await run({
      code: 'def main(args):\n    print("hello from python")\n    return {"greeting": "hello " + args["name"]}\n',
      args: { name: 'podflow' },
    });
    expect(outcome.error).toBeUndefined();
    expect(outcome).toMatchObject({ status: 'succeeded', output: { greeting: 'hello podflow' }, files: [] });
    expect(outcome.logs.stdout).toContain('hello from python');
    expect(outcome.durationMs).toBeGreaterThan(0);
  });

  it('runs a TypeScript hello world', async () => {
    const outcome = await run({
      language: 'typescript',
      code: 'export function main({ a }: { a: number }): { doubled: number } {\n  console.log("hello from ts");\n  return { doubled: a * 2 };\n}\n',
      args: { a: 21 },
    });
    expect(outcome.error).toBeUndefined();
    expect(outcome).toMatchObject({ status: 'succeeded', output: { doubled: 42 } });
    expect(outcome.logs.stdout).toContain('hello from ts');
  });

  it('runs as uid 1000 in /home/user with only the sandbox environment', async () => {
    const outcome = await run({
      code: 'import os\ndef main(args):\n    return {"uid": os.getuid(), "cwd": os.getcwd(), "env": sorted(os.environ), "root": sorted(os.listdir("/"))}\n',
    });
    expect(outcome.output).toMatchObject({ uid: 1000, cwd: '/home/user' });
    // PWD is bwrap's own (--chdir); nothing of the worker's environment gets through.
    expect(outcome.output?.env).toEqual(['HOME', 'LANG', 'MALLOC_ARENA_MAX', 'PATH', 'PWD', 'PYTHONDONTWRITEBYTECODE', 'TMPDIR']);
    expect(outcome.output?.root).not.toEqual(expect.arrayContaining(['root']));
    expect(outcome.output?.root).not.toEqual(expect.arrayContaining(['work']));
  });

  it('kills a Python busy loop at the timeout, with every process it started', async () => {
    const marker = `podflow-marker-${randomBytes(8).toString('hex')}`;
    const outcome = await run({
      timeoutMs: 2_000,
      code: [
        'import subprocess, sys',
        'def main(args):',
        `    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "${marker}"])`,
        `    subprocess.Popen(["/bin/sh", "-c", "sleep 300; echo ${marker}"])`,
        '    while True:',
        '        pass',
      ].join('\n'),
    });
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toMatchObject({ code: 'EXECUTION_TIMEOUT', message: 'main did not return within 2s (node timeout); the sandbox was killed' });
    expect(outcome.durationMs).toBeGreaterThanOrEqual(2_000);
    expect(await processesWithMarker(marker)).toEqual([]);
  });

  it('kills a JavaScript busy loop at the timeout, with its child processes', async () => {
    const marker = `podflow-marker-${randomBytes(8).toString('hex')}`;
    const outcome = await run({
      language: 'javascript',
      timeoutMs: 2_000,
      code: [
        "const { spawn } = require('node:child_process');",
        'function main(args) {',
        `  spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '${marker}'], { stdio: 'ignore', detached: true });`,
        '  for (;;) {}',
        '}',
      ].join('\n'),
    });
    expect(outcome.error?.code).toBe('EXECUTION_TIMEOUT');
    expect(await processesWithMarker(marker)).toEqual([]);
  });

  it('turns an abort into CANCELED and kills the sandbox', async () => {
    const controller = new AbortController();
    const marker = `podflow-marker-${randomBytes(8).toString('hex')}`;
    setTimeout(() => controller.abort(), 1_000);
    const started = Date.now();
    const outcome = await run({ code: `import time\ndef main(args):\n    time.sleep(60)  # ${marker}\n    return {}\n` }, controller.signal);
    expect(outcome.error).toMatchObject({ code: 'CANCELED', message: 'execution canceled' });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('returns CANCELED at once for an already aborted signal', async () => {
    const controller = new AbortController();
    controller.abort();
    const outcome = await run({ code: 'def main(args):\n    return {}\n' }, controller.signal);
    expect(outcome.error?.code).toBe('CANCELED');
  });

  describe('network', () => {
    let server: Server;
    let port: number;
    let connections = 0;

    beforeAll(async () => {
      server = createServer((socket) => {
        connections += 1;
        socket.end('hello\n');
      });
      await new Promise<void>((listening) => server.listen(0, '0.0.0.0', listening));
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((closed) => server.close(() => closed())));

    it('has no route to a host TCP server on 127.0.0.1', async () => {
      const outcome = await run({ code: `import socket\ndef main(args):\n    socket.create_connection(("127.0.0.1", ${port}), timeout=5)\n    return {"connected": True}\n` });
      expect(outcome.status).toBe('failed');
      expect(outcome.error?.code).toBe('CODE_EXECUTION_FAILED');
      expect(outcome.error?.type).toMatch(/ConnectionRefusedError|OSError|TimeoutError/);
      expect(connections).toBe(0);
    });

    const rootOnly = process.getuid?.() === 0 ? it : it.skip;
    const hostAddress = (): string => Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)!.address;
    const probe = (targets: Array<[string, number]>) =>
      `import socket\ndef main(args):\n    out = {}\n    for host, port in ${JSON.stringify(targets)}:\n        try:\n            with socket.create_connection((host, port), timeout=3) as s:\n                out[host] = "got " + s.recv(16).decode()\n        except OSError as e:\n            out[host] = type(e).__name__\n    return out\n`;

    rootOnly('gives granted egress its own network: no host loopback, no host subnet, no metadata service', async () => {
      const host = hostAddress();
      const outcome = await run({ network: true, code: probe([['127.0.0.1', port], [host, port], ['10.0.2.2', port], ['169.254.169.254', 80]]) });
      expect(outcome.error).toBeUndefined();
      expect(outcome.output).toEqual({
        // Its own loopback, not the host's.
        '127.0.0.1': 'ConnectionRefusedError',
        // Prohibited routes: EACCES.
        [host]: 'PermissionError',
        '169.254.169.254': 'PermissionError',
        // slirp4netns --disable-host-loopback.
        '10.0.2.2': expect.stringMatching(/Error$/),
      });
      expect(connections).toBe(0);
    });

    rootOnly('reaches a private range the operator re-opened, and only with the grant', async () => {
      const host = hostAddress();
      const opened = new ProcessDriver({ isolation: 'bubblewrap', workRoot, egressAllowCidrs: [`${host}/32`] });
      try {
        const granted = await opened.execute(request({ network: true, code: probe([[host, port]]) }), new AbortController().signal);
        outcomes.push(granted);
        expect(granted.output).toEqual({ [host]: 'got hello\n' });
        const denied = await opened.execute(request({ network: false, code: probe([[host, port]]) }), new AbortController().signal);
        outcomes.push(denied);
        expect(denied.output).toEqual({ [host]: 'OSError' });
      } finally {
        await opened.close();
      }
      expect(connections).toBe(1);
    });
  });

  it('sees none of the host filesystem', async () => {
    const outcome = await run({
      code: [
        'import os',
        'def main(args):',
        '    seen = {}',
        '    for path in ["/work/main/package.json", "/root", "/etc/shadow", "/etc/hostname", "/proc/1/environ"]:',
        '        try:',
        '            seen[path] = os.listdir(path) if os.path.isdir(path) else open(path).read(64)',
        '        except OSError as exc:',
        '            seen[path] = "denied: " + type(exc).__name__',
        '    return seen',
      ].join('\n'),
    });
    for (const path of ['/work/main/package.json', '/root', '/etc/shadow', '/etc/hostname']) {
      expect(outcome.output?.[path]).toMatch(/^denied: /);
    }
    // /proc is the sandbox's own: its pid 1 is bwrap's init, not the host's.
    expect(outcome.output?.['/proc/1/environ']).not.toContain('PODFLOW');
  });

  it('runs the Python runner the driver compiled, not its source', async () => {
    const outcome = await run({ code: 'import os\ndef main(args):\n    return {"files": sorted(os.listdir("/opt/podflow/runner"))}\n' });
    expect(outcome.output).toEqual({ files: ['node-runner.js', 'podflow_runner.pyc'] });
  });

  it('runs the runner source, and says why, when it could not compile it', async () => {
    const otherRoot = await mkdtemp(join(tmpdir(), 'podflow-sandbox-spec-'));
    await chmod(otherRoot, 0o711);
    await writeFile(join(otherRoot, 'runner'), 'a file where the directory goes');
    const said: string[] = [];
    const source = new ProcessDriver({ isolation: 'bubblewrap', workRoot: otherRoot, logger: { warn: (_obj, msg) => said.push(msg), info: () => undefined } });
    try {
      const outcome = await source.execute(request({ code: 'import os\ndef main(args):\n    return {"files": sorted(os.listdir("/opt/podflow/runner"))}\n' }), new AbortController().signal);
      await outcome.dispose();
      expect(outcome.error).toBeUndefined();
      expect(outcome.output).toEqual({ files: ['node-runner.js', 'podflow_runner.py'] });
      expect(said).toContainEqual(expect.stringMatching(/^could not compile the Python runner/));
    } finally {
      await source.close();
      await rm(otherRoot, { recursive: true, force: true });
    }
  });

  it('can write only under /home/user and /tmp', async () => {
    const outcome = await run({
      code: [
        'def main(args):',
        '    result = {}',
        '    for path in ["/home/user/ok.txt", "/tmp/ok.txt", "/x.txt", "/usr/x.txt", "/etc/x.txt", "/opt/podflow/runner/x.txt", "/opt/podflow/runner/podflow_runner.py", "/opt/podflow/runner/podflow_runner.pyc"]:',
        '        try:',
        '            with open(path, "a") as handle:',
        '                handle.write("x")',
        '            result[path] = "written"',
        '        except OSError as exc:',
        '            result[path] = type(exc).__name__',
        '    return result',
      ].join('\n'),
    });
    expect(outcome.output).toMatchObject({ '/home/user/ok.txt': 'written', '/tmp/ok.txt': 'written' });
    for (const path of ['/x.txt', '/usr/x.txt', '/etc/x.txt', '/opt/podflow/runner/x.txt', '/opt/podflow/runner/podflow_runner.py', '/opt/podflow/runner/podflow_runner.pyc']) {
      expect(outcome.output?.[path]).not.toBe('written');
    }
  });

  it('reports a Python memory hog as MEMORY_LIMIT_EXCEEDED', async () => {
    const outcome = await run({ code: 'def main(args):\n    data = bytearray(2 * 1024 ** 3)\n    return {"size": len(data)}\n' });
    expect(outcome.error?.code).toBe('MEMORY_LIMIT_EXCEEDED');
    expect(outcome.error?.message).toContain('256 MiB');
  });

  it('reports a JavaScript heap hog as MEMORY_LIMIT_EXCEEDED', async () => {
    const outcome = await run({
      language: 'javascript',
      code: 'function main() {\n  const hog = [];\n  for (;;) hog.push(new Array(100000).fill(1.5));\n}\n',
    });
    expect(outcome.error?.code).toBe('MEMORY_LIMIT_EXCEEDED');
  });

  it('reports a JavaScript Buffer hog as MEMORY_LIMIT_EXCEEDED', async () => {
    const outcome = await run({
      language: 'javascript',
      code: 'function main() {\n  const hog = [];\n  for (;;) hog.push(Buffer.alloc(64 * 1024 * 1024, 1));\n}\n',
    });
    expect(outcome.error?.code).toBe('MEMORY_LIMIT_EXCEEDED');
  });

  it('kills a sandbox flooding file descriptor 1 with OUTPUT_TOO_LARGE', async () => {
    const outcome = await run({
      language: 'javascript',
      limits: { maxOutputBytes: 1000 },
      code: 'const fs = require("node:fs");\nfunction main() {\n  fs.writeSync(1, "x".repeat(5 * 1024 * 1024));\n  return {};\n}\n',
    });
    expect(outcome.error?.code).toBe('OUTPUT_TOO_LARGE');
    expect(outcome.error?.message).toContain('file descriptor 1');
  });

  it('stops a file larger than maxFileSizeBytes', async () => {
    const small = new ProcessDriver({ isolation: 'bubblewrap', workRoot, maxFileSizeBytes: MIB });
    const outcome = await small.execute(request({ code: 'def main(args):\n    open("big.bin", "wb").write(b"x" * (2 * 1024 * 1024))\n    return {}\n' }), new AbortController().signal);
    outcomes.push(outcome);
    await small.close();
    expect(outcome.status).toBe('failed');
    expect(`${outcome.error?.type} ${outcome.error?.message}`).toMatch(/File too large|EFBIG|SIGXFSZ/i);
  });

  it('enforces maxProcesses when sandboxes run as a dedicated uid', async () => {
    const report = await driver.init();
    if (!report.dedicatedUids) return; // RLIMIT_NPROC does not apply to host root.
    const outcome = await run({
      code: 'import subprocess\ndef main(args):\n    children = []\n    try:\n        for _ in range(200):\n            children.append(subprocess.Popen(["sleep", "30"]))\n    except OSError as exc:\n        return {"started": len(children), "error": type(exc).__name__}\n    return {"started": len(children)}\n',
    });
    expect(outcome.output?.error).toBe('BlockingIOError');
    expect(outcome.output?.started).toBeLessThan(64);
  });

  describe('containment', () => {
    const asRoot = process.getuid?.() === 0 ? it : it.skip;

    it('hands the sandbox no secret of the worker: not in any process environment, command line or open file', async () => {
      process.env.PODFLOW_SPEC_SECRET = 'podflow-spec-secret-7f3a';
      try {
        const outcome = await run({
          code: [
            'import os',
            'def main(args):',
            '    seen = []',
            '    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:',
            '        for name in ["environ", "cmdline"]:',
            '            try:',
            '                seen.append(open(f"/proc/{pid}/{name}", "rb").read().decode("latin-1"))',
            '            except OSError as exc:',
            '                seen.append(type(exc).__name__)',
            '        for fd in os.listdir(f"/proc/{pid}/fd") if os.access(f"/proc/{pid}/fd", os.R_OK) else []:',
            '            try:',
            '                seen.append(os.readlink(f"/proc/{pid}/fd/{fd}"))',
            '            except OSError:',
            '                pass',
            '    return {"seen": seen, "pids": sorted(p for p in os.listdir("/proc") if p.isdigit())}',
          ].join('\n'),
        });
        expect(outcome.error).toBeUndefined();
        const seen = (outcome.output?.seen as string[]).join('\n');
        expect(seen).toContain('PATH=/usr/local/bin:/usr/bin:/bin');
        expect(seen).not.toContain('podflow-spec-secret-7f3a');
        expect(seen).not.toMatch(/REDIS_URL|PODFLOW_API_KEYS|FILE_URL_SECRET|AWS_/);
        // Open files: pipes, /dev/null and the code's own, never a host file.
        for (const target of outcome.output?.seen as string[]) if (target.startsWith('/')) expect(target).toMatch(/^\/(dev|proc|home\/user|tmp|usr|opt\/podflow)\b/);
      } finally {
        delete process.env.PODFLOW_SPEC_SECRET;
      }
    });

    it('loads the seccomp filter: namespace, mount and ptrace calls fail with EPERM', async () => {
      const outcome = await run({
        code: [
          'import ctypes, os',
          'def main(args):',
          '    libc = ctypes.CDLL(None, use_errno=True)',
          '    calls = {"unshare": lambda: libc.unshare(0x40000000), "mount": lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None), "ptrace": lambda: libc.ptrace(16, 1, 0, 0), "keyctl": lambda: libc.syscall(250, 0, 0, 0, 0), "vsock": lambda: libc.socket(40, 1, 0)}',
          '    out = {name: (call(), ctypes.get_errno()) for name, call in calls.items()}',
          '    out["mode"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0]',
          '    return out',
        ].join('\n'),
      });
      expect(outcome.output).toEqual({ unshare: [-1, 1], mount: [-1, 1], ptrace: [-1, 1], keyctl: [-1, 1], vsock: [-1, 1], mode: '2' });
    });

    it('caps open files per process (the host file table is shared)', async () => {
      const outcome = await run({ code: 'def main(args):\n    held = []\n    try:\n        for _ in range(5000):\n            held.append(open("/dev/null"))\n    except OSError as exc:\n        return {"opened": len(held), "error": exc.strerror}\n    return {"opened": len(held)}\n' });
      expect(outcome.output).toMatchObject({ error: 'Too many open files' });
      expect(outcome.output!.opened as number).toBeLessThan(1024);
    });

    it('does not let the code pass itself off as a sandbox set-up failure (retried as SANDBOX_LOST)', async () => {
      const outcome = await run({ code: 'import os\ndef main(args):\n    os.write(2, b"bwrap: Can\'t mount proc on /newroot/proc: Operation not permitted\\n")\n    os._exit(1)\n' });
      expect(outcome.error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', message: 'the runner exited with code 1 before returning a result' });
    });

    it('keeps /dev read-only and /dev/shm within its size', async () => {
      const outcome = await run({
        code: 'def main(args):\n    out = {}\n    for path, size in [("/dev/evil", 1), ("/dev/shm/big", 64 * 1024 * 1024)]:\n        try:\n            with open(path, "wb") as f:\n                f.write(b"x" * size)\n            out[path] = "written"\n        except OSError as exc:\n            out[path] = exc.strerror\n    return out\n',
      });
      expect(outcome.output).toEqual({ '/dev/evil': 'Read-only file system', '/dev/shm/big': 'No space left on device' });
    });

    asRoot('holds all processes of one execution to one memory budget (cgroup)', async () => {
      // Six children of 100 MiB each: every one is under the 256 MiB limit, together they are not.
      const outcome = await run({
        code: 'import subprocess, sys\ndef main(args):\n    hog = "import time; b = bytearray(bytes([120])) * (100 * 1024 * 1024); time.sleep(2)"\n    children = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(6)]\n    return {"codes": [c.wait() for c in children]}\n',
        timeoutMs: 20_000,
      });
      const codes = (outcome.output?.codes as number[] | undefined) ?? [];
      // The kernel kills children (-9) to stay in budget, or the runner itself when it is the biggest.
      if (outcome.status === 'failed') expect(outcome.error?.code).toBe('MEMORY_LIMIT_EXCEEDED');
      else expect(codes.filter((code) => code === -9).length).toBeGreaterThanOrEqual(3);
    });

    asRoot("measures an execution's peak memory (its cgroup's high watermark), for usage accounting", async () => {
      const small = await run({ code: 'def main(args):\n    return {}\n' });
      const big = await run({ code: 'def main(args):\n    b = bytearray(96 * 1024 * 1024)\n    del b\n    return {}\n' });
      expect(small.peakMemoryBytes).toBeGreaterThan(0);
      expect(big.peakMemoryBytes).toBeGreaterThanOrEqual(96 * MIB);
      expect(big.peakMemoryBytes! - small.peakMemoryBytes!).toBeGreaterThanOrEqual(80 * MIB);
    });

    const launches = [
      { how: 'through podflow-launch, started by its spawn server', launcherBin: undefined, launcher: true, spawnServer: true },
      { how: 'through podflow-launch, spawned by the driver itself (spawnServer: false)', launcherBin: undefined, launcher: true, spawnServer: false },
      { how: 'through podflow-launch, spawned by the driver itself when the launcher cannot be a spawn server (an older build)', launcherBin: 'older-launcher', launcher: true, spawnServer: false },
      { how: 'through the sh chain when podflow-launch is not there', launcherBin: 'not-built', launcher: false, spawnServer: false },
      { how: 'through the sh chain when podflow-launch does not run', launcherBin: '/bin/false', launcher: false, spawnServer: false },
    ];
    for (const { how, launcherBin, launcher, spawnServer } of launches) {
    asRoot(`sets up the home quota, cgroups, uid, groups and rlimits ${how}`, async () => {
      if (launcherBin === 'older-launcher') {
        // Everything but --spawn-server, which it refuses the way a launcher from before it did.
        const older = join(workRoot, launcherBin);
        await writeFile(older, `#!/bin/sh\n[ "$1" = --spawn-server ] && { echo "podflow-launch: unknown argument --spawn-server" >&2; exit 125; }\nexec ${BUILT_LAUNCHER} "$@"\n`, { mode: 0o755 });
      }
      const chain = new ProcessDriver({
        isolation: 'bubblewrap',
        workRoot,
        homeSizeBytes: 8 * MIB,
        memoryLimitBytes: 64 * MIB,
        ...(launcherBin ? { launcherBin: launcherBin.startsWith('/') ? launcherBin : join(workRoot, launcherBin) } : {}),
        ...(spawnServer || launcherBin === 'older-launcher' ? {} : { spawnServer: false }),
      });
      try {
        expect(await chain.init()).toMatchObject({ launcher, spawnServer, dedicatedUids: true, cgroups: true, homeQuota: true });
        const code = [
          'import os, resource',
          'def main(args):',
          '    try:',
          '        open("big.bin", "wb").write(b"x" * (32 * 1024 * 1024))',
          '        written = True',
          '    except OSError:',
          '        written = False',
          '    ballast = bytearray(24 * 1024 * 1024)',
          '    return {"written": written, "groups": os.getgroups(), "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0], "uid": os.getuid(), "ballast": len(ballast)}',
        ].join('\n');
        const outcome = await chain.execute(request({ code }), new AbortController().signal);
        outcomes.push(outcome);
        expect(outcome.output).toMatchObject({ written: false, groups: [], nproc: expect.any(Number) });
        expect((outcome.output as { nproc: number }).nproc).toBeLessThan(1000);
        // Its memory cgroup saw the ballast: the chain joined it before anything ran.
        expect(outcome.peakMemoryBytes).toBeGreaterThanOrEqual(24 * MIB);
      } finally {
        await chain.close();
      }
    });
    }

    asRoot('applies the rlimits through podflow-launch when prlimit is missing and nothing else needs root', async () => {
      const bare = new ProcessDriver({ isolation: 'bubblewrap', workRoot, sandboxUids: false, cgroups: false, prlimitBin: join(workRoot, 'no-prlimit'), maxOpenFiles: 77 });
      try {
        expect(await bare.init()).toMatchObject({ rlimits: true, launcher: true, cgroups: false });
        const outcome = await bare.execute(request({ code: 'import resource\ndef main(args):\n    return {"nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE))}\n' }), new AbortController().signal);
        await outcome.dispose();
        expect(outcome.error).toBeUndefined();
        expect(outcome.output).toEqual({ nofile: [77, 77] });
      } finally {
        await bare.close();
      }
    });

    asRoot('detaches each disposed home through the unmount server, and no other', async () => {
      const homes = async () => new Set((await readFile('/proc/mounts', 'utf8')).split('\n').filter((line) => line.startsWith('podflow-home ')).map((line) => line.split(' ')[1]!).filter((dir) => dir.startsWith(`${workRoot}/`)));
      const before = await homes();
      const done = await Promise.all([1, 2, 3].map(() => driver.execute(request({ code: 'def main(args):\n    open("x.txt", "w").write("x")\n    return {}\n' }), new AbortController().signal)));
      const during = await homes();
      expect(during.size).toBe(before.size + 3);
      await Promise.all(done.map((outcome) => outcome.dispose()));
      expect(await homes()).toEqual(before);
      expect(execFileSync('pgrep', ['-f', `unmount-server ${workRoot}`], { encoding: 'utf8' }).trim()).toMatch(/^\d+$/);
    });

    asRoot('stops writes under /home/user at the home size', async () => {
      const small = new ProcessDriver({ isolation: 'bubblewrap', workRoot, homeSizeBytes: 8 * MIB });
      try {
        const outcome = await small.execute(request({ code: 'def main(args):\n    try:\n        open("big.bin", "wb").write(b"x" * (32 * 1024 * 1024))\n    except OSError as exc:\n        return {"error": exc.strerror}\n    return {"error": None}\n' }), new AbortController().signal);
        outcomes.push(outcome);
        expect(outcome.output).toEqual({ error: 'No space left on device' });
      } finally {
        await small.close();
      }
    });

    it('clamps a memory request above the operator maximum, and says so', async () => {
      const outcome = await run({ code: 'def main(args):\n    return {}\n', resources: { memory: '1Ti' } });
      expect(outcome.status).toBe('succeeded');
      expect(outcome.warnings).toEqual([expect.stringContaining('resources.memory 1Ti is above the operator maximum')]);
    });
  });

  describe('dependency installs', () => {
    const asRoot = process.getuid?.() === 0 ? it : it.skip;

    /** A layer backend whose "installer" is `evil` (Python), run through the confined runner. */
    function evilBackend(root: string, evil: string, maxLayerBytes = 32 * MIB): LocalLayerBackend {
      const confined = driver.installerRunner({ memoryBytes: 512 * MIB, tmpSizeBytes: 64 * MIB, maxLayerBytes, maxProcesses: 64, cpuMillis: 1000 });
      return new LocalLayerBackend({
        root,
        interpreters: driver.interpreters,
        commands: { python: driver.interpreters.python, npm: ['npm'] },
        installer: { npmIgnoreScripts: true },
        maxBytes: 1024 * MIB,
        minIdleMs: 0,
        hostEnv: {},
        runInstaller: (run) => confined({ ...run, argv: () => ['/usr/bin/python3', '-c', evil] }),
        builtBy: 'spec',
      });
    }
    const spec = { key: 'a'.repeat(64), runtimeId: 'spec', ecosystem: 'pypi' as const, specs: ['evil==1'] };

    asRoot('a build cannot make the worker write through a link or block on a FIFO it left in the layer', async () => {
      const root = await mkdtemp(join(workRoot, 'layers-'));
      const victim = join(workRoot, 'victim.txt');
      await writeFile(victim, 'precious');
      const evil = [
        'import os',
        'os.makedirs("python/pkg")',
        'open("python/pkg/__init__.py", "w").write("x = 1")',
        `os.symlink("${victim}", ".podflow-layer.json")`,
        'os.mkfifo("trap.fifo")',
        'os.mkfifo("python/pkg/trap.fifo")',
      ].join('\n');
      const manifest = await evilBackend(root, evil).build(spec, 20_000);
      expect(manifest.specs).toEqual(['evil==1']);
      expect(await readFile(victim, 'utf8')).toBe('precious');
      const published = join(root, spec.key);
      expect((await readdir(published)).sort()).toEqual(['.podflow-layer.json', 'python']);
      expect((await lstat(join(published, '.podflow-layer.json'))).isFile()).toBe(true);
      expect(await readdir(join(published, 'python/pkg'))).toEqual(['__init__.py']);
    });

    asRoot('a build cannot fill the host disk: it stops at the layer size and publishes nothing', async () => {
      const root = await mkdtemp(join(workRoot, 'layers-'));
      const evil = 'import os\nos.makedirs("python")\nwith open("python/big.bin", "wb") as f:\n    for _ in range(64):\n        f.write(b"x" * (1024 * 1024))\n';
      await expect(evilBackend(root, evil, 16 * MIB).build(spec, 20_000)).rejects.toMatchObject({ code: 'DEPENDENCY_INSTALL_FAILED', message: expect.stringMatching(/File too large|No space left/) });
      expect(await readdir(root).then((names) => names.filter((n) => !n.startsWith('.')))).toEqual([]);
    });

    asRoot('run confined: only the staging directory is writable, no host file, secret or service is reachable', async () => {
      const staging = await mkdtemp(join(workRoot, 'staging-'));
      process.env.PODFLOW_SPEC_SECRET = 'podflow-install-secret-91c2';
      try {
        const probe = [
          'import json, os, socket',
          'out = {"uid": os.getuid(), "cwd": os.getcwd(), "home": os.environ.get("HOME")}',
          'for name, action in [("write_usr", lambda: open("/usr/evil", "w")), ("read_root", lambda: os.listdir("/root")), ("host_loopback", lambda: socket.create_connection(("127.0.0.1", 22), timeout=2))]:',
          '    try:',
          '        action(); out[name] = "allowed"',
          '    except OSError as exc:',
          '        out[name] = type(exc).__name__',
          'out["environ"] = open("/proc/1/environ", "rb").read().decode("latin-1")',
          'json.dump(out, open("report.json", "w"))',
          'print("probe done")',
        ].join('\n');
        const ended = await driver.installerRunner({ memoryBytes: 256 * MIB, tmpSizeBytes: 64 * MIB, maxLayerBytes: 32 * MIB, maxProcesses: 64, cpuMillis: 1000 })({
          argv: (target) => ['/usr/bin/python3', '-c', probe, target],
          staging,
          env: { LANG: 'C.UTF-8' },
          timeoutMs: 20_000,
        });
        expect(ended).toMatchObject({ kind: 'exit', code: 0 });
        const report = JSON.parse(await readFile(join(staging, 'report.json'), 'utf8'));
        expect(report).toMatchObject({ uid: 1000, cwd: '/home/user', home: '/tmp', write_usr: 'OSError', read_root: expect.stringMatching(/Error$/), host_loopback: 'ConnectionRefusedError' });
        expect(report.environ).not.toContain('podflow-install-secret-91c2');
      } finally {
        delete process.env.PODFLOW_SPEC_SECRET;
        await rm(staging, { recursive: true, force: true });
      }
    });
  });

  it('collects the files written under /home/user and removes them on dispose', async () => {
    const outcome = await run({
      code: 'import os\ndef main(args):\n    os.makedirs("out", exist_ok=True)\n    open("out/report.csv", "w").write("a,b\\n1,2\\n")\n    open("/tmp/scratch.txt", "w").write("discarded")\n    return {"ok": True}\n',
    });
    expect(outcome.status).toBe('succeeded');
    expect(outcome.files.map((file) => file.path)).toEqual(['out/report.csv']);
    const [file] = outcome.files;
    const content = await readAll(file.open());
    expect(content.toString()).toBe('a,b\n1,2\n');
    expect(file.size).toBe(content.length);
    expect(file.sha256).toBe(createHash('sha256').update(content).digest('hex'));

    const dirs = (await readdir(workRoot)).filter((name) => name.startsWith('exec-'));
    expect(dirs.length).toBeGreaterThan(0);
    const before = await Promise.all(dirs.map((name) => stat(join(workRoot, name, 'home', 'out', 'report.csv')).then(() => name, () => undefined)));
    const execDir = join(workRoot, before.find(Boolean)!);
    await outcome.dispose();
    await outcome.dispose();
    expect(existsSync(execDir)).toBe(false);
  });

  it('runs several executions at once, each in its own directory', async () => {
    const results = await Promise.all(
      [1, 2, 3, 4].map((n) => run({ code: `import os\ndef main(args):\n    open("n.txt", "w").write("${n}")\n    return {"n": ${n}, "files": os.listdir(".")}\n` })),
    );
    expect(results.map((outcome) => outcome.output)).toEqual([1, 2, 3, 4].map((n) => ({ n, files: ['n.txt'] })));
  });

  it('fails with SANDBOX_LOST naming a missing interpreter', async () => {
    const broken = new ProcessDriver({ isolation: 'bubblewrap', workRoot, pythonBin: '/nonexistent/bin/python3' });
    const outcome = await broken.execute(request({ code: 'def main(args):\n    return {}\n' }), new AbortController().signal);
    outcomes.push(outcome);
    await broken.close();
    expect(outcome.error?.code).toBe('SANDBOX_LOST');
    expect(outcome.error?.message).toContain('/nonexistent/bin/python3');
  });

  describe('an answer the code wrote itself (it shares the runner\'s process and can find the nonce)', () => {
    const logs = { stdout: '', stderr: '', truncated: false };

    it('cannot pass for the platform: an error code only podflow reports becomes the code\'s failure', async () => {
      const outcome = await run({ code: forgedPythonAnswer({ ok: false, error: { code: 'SANDBOX_LOST', message: 'forged' }, files: [], logs, durationMs: -5 }) });
      expect(outcome.status).toBe('failed');
      expect(outcome.error).toMatchObject({ code: 'CODE_EXECUTION_FAILED', details: { reportedCode: 'SANDBOX_LOST' } });
      expect(outcome.durationMs).toBeGreaterThanOrEqual(0);
    });

    it('keeps logs within maxLogBytes', async () => {
      const outcome = await run({
        code: forgedPythonAnswer({ ok: true, output: { forged: true }, files: [], logs, durationMs: 1 }, { before: ['answer["logs"]["stdout"] = "L" * (2 * 1024 * 1024) + "END"'] }),
        limits: { maxLogBytes: 64 * 1024 },
      });
      expect(outcome).toMatchObject({ status: 'succeeded', output: { forged: true } });
      expect(Buffer.byteLength(outcome.logs.stdout)).toBe(64 * 1024);
      expect(outcome.logs.stdout.endsWith('END')).toBe(true);
      expect(outcome.logs.truncated).toBe(true);
    });

    it('is refused unread when it holds more objects and arrays than an output can need (a worker parsing [{},{},...] ran out of heap)', async () => {
      const outcome = await run({ code: forgedPythonAnswer({ ok: true, output: {}, files: [], logs, durationMs: 1 }, { before: ['answer["output"] = {"x": [{}] * 700000}'] }) });
      expect(outcome).toMatchObject({ status: 'failed', error: { code: 'OUTPUT_TOO_LARGE', message: expect.stringContaining('refused before it was read: the answer holds more than 524452 objects and arrays') } });
    });

    it('cannot list more files than maxFiles', async () => {
      const files = Array.from({ length: 5000 }, (_, i) => ({ path: `f${i}.txt`, size: 0, sha256: 'x' }));
      const outcome = await run({ code: forgedPythonAnswer({ ok: true, output: {}, files, logs, durationMs: 1 }), limits: { maxFiles: 100 } });
      expect(outcome.error?.code).toBe('FILES_TOO_LARGE');
      expect(outcome.files).toEqual([]);
    });
  });

  it('never warned that the sandbox is not isolated', () => {
    expect(warnings.filter((msg) => msg.includes('NOT isolated'))).toEqual([]);
  });
});
