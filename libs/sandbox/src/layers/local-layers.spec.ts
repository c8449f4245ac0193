import { normaliseDependencies } from '@podflow/workflow';
import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SandboxOutcome, SandboxRequest } from '../driver';
import { ProcessDriver } from '../process/process-driver';
import { LAYER_MANIFEST_FILE, layerKey } from './layer';
import { LayerResolver } from './layer-resolver';
import { LayerResolvingDriver } from './layered-driver';
import { LocalLayerBackend } from './local-layer-backend';

// Real installs from PyPI and the npm registry, a real Redis (REDIS_URL, started by `npm test`),
// real bubblewrap sandboxes. Nothing here is mocked.
jest.setTimeout(240_000);

const redisUrl = process.env.REDIS_URL;
if (!redisUrl) throw new Error('REDIS_URL is not set: run this suite through `npm test`, which starts a private redis-server');

const PY_SET = ['tabulate==0.9.0', 'python-dateutil==2.9.0.post0'];
const PY_CODE = `
from dateutil.relativedelta import relativedelta
from datetime import date
from tabulate import tabulate
import dateutil, tabulate as t
def main(args):
    later = date(2024, 1, 31) + relativedelta(months=1)
    table = tabulate([["a", 1], ["b", 2]], headers=["k", "v"], tablefmt="github")
    return {"later": later.isoformat(), "table": table, "from": [dateutil.__file__, t.__file__]}
`;
const TS_CODE = `
import dayjs from 'dayjs';
export function main(args: { when: string }) {
  return { formatted: dayjs(args.when).add(1, 'day').format('YYYY-MM-DD'), from: require.resolve('dayjs') };
}
`;

let redis: Redis;
let root: string;
let workRoot: string;
let driver: ProcessDriver;
const outcomes: SandboxOutcome[] = [];
const logs: string[] = [];
const logger = { warn: (_o: object, msg: string) => logs.push(msg), info: (_o: object, msg: string) => logs.push(msg) };

beforeAll(async () => {
  redis = new Redis(redisUrl);
  root = await mkdtemp(join(tmpdir(), 'podflow-layers-spec-'));
  workRoot = await mkdtemp(join(tmpdir(), 'podflow-layers-work-'));
  // Sandboxes running as dedicated uids must be able to traverse it (mkdtemp makes it 0700).
  await chmod(workRoot, 0o711);
  driver = new ProcessDriver({ isolation: 'bubblewrap', workRoot, logger });
});

afterAll(async () => {
  await Promise.all(outcomes.map((outcome) => outcome.dispose()));
  await driver.close();
  redis.disconnect();
  await rm(root, { recursive: true, force: true });
  await rm(workRoot, { recursive: true, force: true });
});

/** One "worker": its own resolver (own in-process map) over the shared cache dir and Redis. */
function worker(prefix: string, overrides: Partial<ConstructorParameters<typeof LocalLayerBackend>[0]> & { installTimeoutMs?: number; lockTtlMs?: number; cacheRoot?: string } = {}) {
  const backend = new LocalLayerBackend({
    root: overrides.cacheRoot ?? root,
    interpreters: driver.interpreters,
    commands: { python: driver.interpreters.python, npm: [join(process.execPath, '..', 'npm')] },
    installer: { npmIgnoreScripts: true },
    maxBytes: overrides.maxBytes ?? 10 * 1024 ** 3,
    minIdleMs: overrides.minIdleMs ?? 600_000,
    hostEnv: process.env,
    // The worker's wiring: installs confined like user code.
    runInstaller: driver.installerRunner({ memoryBytes: 2 * 1024 ** 3, tmpSizeBytes: 1024 ** 3, maxLayerBytes: 1024 ** 3, maxProcesses: 256, cpuMillis: 2000 }),
    builtBy: `spec-${prefix}`,
    logger,
  });
  const resolver = new LayerResolver({
    backend,
    redis,
    keyPrefix: `${prefix}:`,
    normalise: normaliseDependencies,
    installTimeoutMs: overrides.installTimeoutMs ?? 180_000,
    lockTtlMs: overrides.lockTtlMs ?? 3_000,
    pollMs: 50,
    owner: `spec-${randomBytes(3).toString('hex')}`,
    logger,
  });
  return { backend, resolver, layered: new LayerResolvingDriver(driver, resolver) };
}

const freshPrefix = () => `{layers-${randomBytes(4).toString('hex')}}`;

function request(overrides: Partial<SandboxRequest> & Pick<SandboxRequest, 'code'>): SandboxRequest {
  return {
    executionId: `run-1.node-1.${randomBytes(4).toString('hex')}`,
    tenantId: 'tenant-a',
    runId: 'run-1',
    nodeId: 'node-1',
    attempt: 1,
    language: 'python',
    args: {},
    timeoutMs: 30_000,
    dependencies: [],
    network: false,
    ...overrides,
  };
}

async function execute(target: LayerResolvingDriver, overrides: Partial<SandboxRequest> & Pick<SandboxRequest, 'code'>): Promise<SandboxOutcome> {
  const outcome = await target.execute(request(overrides), new AbortController().signal);
  outcomes.push(outcome);
  return outcome;
}

async function builds(prefix: string): Promise<Record<string, string>> {
  return redis.hgetall(`${prefix}:layer:builds`);
}

const totalBuilds = (counts: Record<string, string>) => Object.values(counts).reduce((sum, n) => sum + Number(n), 0);

describe('dependency layers on the process driver', () => {
  it('imports real PyPI packages from a layer mounted read-only; the second run reuses it and is faster', async () => {
    const prefix = freshPrefix();
    const { layered } = worker(prefix);
    const cold = await execute(layered, { code: PY_CODE, dependencies: [...PY_SET].reverse() });
    expect(cold.error).toBeUndefined();
    expect(cold.status).toBe('succeeded');
    expect(cold.output).toMatchObject({ later: '2024-02-29', table: '| k   |   v |\n|-----|-----|\n| a   |   1 |\n| b   |   2 |' });
    // Imported from the layer's mount, not from the host.
    expect((cold.output!.from as string[]).every((path) => path.startsWith('/opt/podflow/layer/python/'))).toBe(true);
    expect(cold.layer).toMatchObject({ source: 'built' });

    const warm = await execute(layered, { code: PY_CODE, dependencies: PY_SET });
    expect(warm.status).toBe('succeeded');
    expect(warm.output).toEqual(cold.output);
    expect(warm.layer).toMatchObject({ key: cold.layer!.key, source: 'cache' });
    expect(totalBuilds(await builds(prefix))).toBe(1);
    // The cold run paid for pip; the warm one only for a lookup (both measured the same way).
    expect(warm.layer!.resolveMs).toBeLessThan(cold.layer!.resolveMs);

    // The layer is read-only inside the sandbox.
    const write = await execute(layered, {
      code: 'import os\ndef main(args):\n    try:\n        open("/opt/podflow/layer/python/x.txt", "w")\n        return {"wrote": True}\n    except OSError as e:\n        return {"wrote": False, "errno": e.errno}\n',
      dependencies: PY_SET,
    });
    expect(write.output).toEqual({ wrote: false, errno: 30 });
  });

  it('imports a real npm package into a TypeScript node', async () => {
    const prefix = freshPrefix();
    const { layered } = worker(prefix);
    const outcome = await execute(layered, { language: 'typescript', code: TS_CODE, args: { when: '2024-02-28' }, dependencies: ['dayjs@1.11.13'] });
    expect(outcome.error).toBeUndefined();
    expect(outcome.output).toEqual({ formatted: '2024-02-29', from: '/opt/podflow/layer/node_modules/dayjs/dayjs.min.js' });
    expect(totalBuilds(await builds(prefix))).toBe(1);
  });

  it('builds a new layer exactly once for 20 concurrent executions on 20 workers, and all succeed', async () => {
    const prefix = freshPrefix();
    const workers = Array.from({ length: 20 }, () => worker(prefix));
    const specs = ['tabulate==0.8.10'];
    const results = await Promise.all(
      workers.map((w) => execute(w.layered, { code: 'import tabulate\ndef main(args):\n    return {"v": tabulate.__version__}\n', dependencies: specs })),
    );
    expect(results.map((r) => r.error)).toEqual(Array(20).fill(undefined));
    expect(results.map((r) => r.output)).toEqual(Array(20).fill({ v: '0.8.10' }));
    const counts = await builds(prefix);
    expect(Object.keys(counts)).toHaveLength(1);
    expect(totalBuilds(counts)).toBe(1);
    const sources = results.map((r) => r.layer!.source);
    expect(sources.filter((s) => s === 'built')).toHaveLength(1);
    expect(sources.filter((s) => s === 'built' || s === 'shared' || s === 'cache')).toHaveLength(20);
  });

  it('a builder killed mid-install publishes nothing; the next execution rebuilds cleanly', async () => {
    const prefix = freshPrefix();
    const { layered, backend } = worker(prefix);
    const specs = ['tabulate==0.8.9'];
    const key = layerKey(await backend.runtimeId('python'), 'pypi', specs);
    const pending = execute(layered, { code: 'import tabulate\ndef main(args):\n    return {"v": tabulate.__version__}\n', dependencies: specs });
    // The installer is a real pip process in a confined build named after the layer key
    // (install-<pid>-<key…>): kill it as soon as it runs.
    const pid = await waitForProcess([key.slice(0, 16), '--unshare-all']);
    process.kill(pid, 'SIGKILL');
    const killed = await pending;
    expect(killed.status).toBe('failed');
    expect(killed.error).toMatchObject({ code: 'SANDBOX_LOST' });
    expect(killed.error!.message).toMatch(/killed by SIGKILL; nothing was published/);
    expect(existsSync(join(root, key))).toBe(false);

    const again = await execute(layered, { code: 'import tabulate\ndef main(args):\n    return {"v": tabulate.__version__}\n', dependencies: specs });
    expect(again.error).toBeUndefined();
    expect(again.output).toEqual({ v: '0.8.9' });
    expect(again.layer!.source).toBe('built');
    expect(Number((await builds(prefix))[key])).toBe(2);
    expect(JSON.parse(await readFile(join(root, key, LAYER_MANIFEST_FILE), 'utf8'))).toMatchObject({ key, specs });
  });

  it('takes over the build of a worker that died holding the lease, and never trusts its half-written directory', async () => {
    const prefix = freshPrefix();
    const { layered, backend } = worker(prefix, { lockTtlMs: 1500 });
    const specs = ['tabulate==0.8.8'];
    const key = layerKey(await backend.runtimeId('python'), 'pypi', specs);
    // A dead worker: its lease (never renewed, expires in 1.5 s) and a half-written staging directory.
    await redis.set(`${prefix}:layer:lock:${key}`, 'dead-worker', 'PX', 1500);
    const half = join(root, '.building', `${key}-dead`);
    await mkdir(join(half, 'python', 'tabulate'), { recursive: true });
    await writeFile(join(half, 'python', 'tabulate', '__init__.py'), 'raise ImportError("half a layer")\n');

    const started = Date.now();
    const outcome = await execute(layered, { code: 'import tabulate\ndef main(args):\n    return {"v": tabulate.__version__}\n', dependencies: specs });
    expect(outcome.error).toBeUndefined();
    expect(outcome.output).toEqual({ v: '0.8.8' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(Number((await builds(prefix))[key])).toBe(1);
  });

  it('a package that does not exist is DEPENDENCY_INSTALL_FAILED with the installer\'s own message, remembered for the next caller', async () => {
    const prefix = freshPrefix();
    const { layered } = worker(prefix);
    const name = `podflow-no-such-package-${randomBytes(4).toString('hex')}`;
    const first = await execute(layered, { code: 'def main(args): return {}', dependencies: [`${name}==1.0`] });
    expect(first.status).toBe('failed');
    expect(first.error!.code).toBe('DEPENDENCY_INSTALL_FAILED');
    expect(first.error!.message).toContain(`pip could not install ${name}==1.0 (exit code 1)`);
    expect(first.error!.message).toMatch(/No matching distribution found for podflow-no-such-package/);
    const second = await execute(layered, { code: 'def main(args): return {}', dependencies: [`${name}==1.0`] });
    expect(second.error).toEqual(first.error);
    expect(totalBuilds(await builds(prefix))).toBe(1);

    const npm = await execute(layered, { language: 'javascript', code: 'function main() { return {} }', dependencies: [`${name}@1.0.0`] });
    expect(npm.error!.code).toBe('DEPENDENCY_INSTALL_FAILED');
    expect(npm.error!.message).toContain(`npm could not install ${name}@1.0.0`);
    expect(npm.error!.message).toMatch(/404/);
  });

  it('a version conflict is DEPENDENCY_INSTALL_FAILED with pip\'s explanation', async () => {
    const { layered } = worker(freshPrefix());
    const outcome = await execute(layered, { code: 'def main(args): return {}', dependencies: ['tabulate==0.9.0', 'tabulate<0.9'] });
    // Two specs for one package are refused before anything runs...
    expect(outcome.error!.code).toBe('INVALID_DEPENDENCY');
    // ...while a conflict pip discovers is its own to explain.
    const conflict = await execute(layered, { code: 'def main(args): return {}', dependencies: ['tabulate>=99'] });
    expect(conflict.error!.code).toBe('DEPENDENCY_INSTALL_FAILED');
    expect(conflict.error!.message).toMatch(/Could not find a version that satisfies the requirement tabulate>=99/);
  });

  it('installs are bounded by the install timeout', async () => {
    // pip cannot even start in 200 ms.
    const { layered } = worker(freshPrefix(), { installTimeoutMs: 200 });
    const outcome = await execute(layered, { code: 'def main(args): return {}', dependencies: ['tabulate==0.8.7'] });
    expect(outcome.error!.code).toBe('DEPENDENCY_INSTALL_FAILED');
    expect(outcome.error!.message).toMatch(/pip could not install tabulate==0.8.7 \(timed out after 200 ms, see LAYER_INSTALL_TIMEOUT_MS\)/);
  });

  it('bad specs are INVALID_DEPENDENCY before anything is installed', async () => {
    const prefix = freshPrefix();
    const { layered } = worker(prefix);
    for (const bad of ['https://evil.example/pkg.tar.gz', './local', 'git+https://github.com/x/y', '--index-url=https://evil', '-e .', 'tabulate; rm -rf /']) {
      const outcome = await execute(layered, { code: 'def main(args): return {}', dependencies: [bad] });
      expect(outcome.error).toMatchObject({ code: 'INVALID_DEPENDENCY' });
      expect(outcome.error!.message).toContain(JSON.stringify(bad));
    }
    expect(await builds(prefix)).toEqual({});
  });

  it('evicts the least recently used layer past the size cap', async () => {
    const cacheRoot = await mkdtemp(join(tmpdir(), 'podflow-layers-lru-'));
    try {
      const prefix = freshPrefix();
      const { layered, backend } = worker(prefix, { cacheRoot, maxBytes: 1, minIdleMs: 0 });
      const first = await execute(layered, { code: 'def main(args): return {}', dependencies: ['tabulate==0.9.0'] });
      expect(first.status).toBe('succeeded');
      const second = await execute(layered, { code: 'def main(args): return {}', dependencies: ['tabulate==0.8.10'] });
      expect(second.status).toBe('succeeded');
      const published = (await readdir(cacheRoot)).filter((name) => /^[0-9a-f]{64}$/.test(name));
      expect(published).toEqual([second.layer!.key]);
      expect(await backend.lookup(first.layer!.key)).toBeUndefined();
    } finally {
      await rm(cacheRoot, { recursive: true, force: true });
    }
  });

  it('a node without dependencies touches no layer at all', async () => {
    const prefix = freshPrefix();
    const { layered } = worker(prefix);
    const outcome = await execute(layered, { code: 'import os\ndef main(args): return {"layer": os.path.exists("/opt/podflow/layer")}' });
    expect(outcome.output).toEqual({ layer: false });
    expect(outcome.layer).toBeUndefined();
    expect(await redis.keys(`${prefix}:*`)).toEqual([]);
  });
});

/** Pid of the first process whose command line contains `marker` (polls /proc). */
/** The first process whose command line holds every one of `markers`. */
async function waitForProcess(markers: string[], timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
      if (markers.every((marker) => cmdline.includes(marker))) return Number(entry);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no process with ${markers.join(' and ')} in its command line appeared`);
}
