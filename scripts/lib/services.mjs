// Set-up shared by `npm start`, `npm test` and `npm run bench`: dependencies, build, and the
// local services podflow needs (redis-server, bubblewrap), installed from the system package
// manager when they are missing and that is possible. No dependencies beyond Node itself (the
// tests' MinIO, built with Go, is in minio.mjs).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(new URL('../..', import.meta.url).pathname);
export const CACHE_DIR = process.env.PODFLOW_CACHE_DIR ?? join(homedir(), '.cache', 'podflow');

export function say(message) {
  process.stderr.write(`[podflow] ${message}\n`);
}

function which(binary) {
  const found = spawnSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: ROOT, ...options });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed with exit code ${result.status}`);
}

let aptUpdated = false;
/** Installs Debian packages when we are root on a system with apt-get; otherwise explains how. */
export function ensureSystemPackage(binary, debianPackage, why) {
  if (which(binary)) return which(binary);
  const canApt = process.platform === 'linux' && process.getuid?.() === 0 && which('apt-get');
  if (!canApt) {
    throw new Error(`${binary} is missing (${why}). Install it, e.g. "sudo apt-get install ${debianPackage}" on Debian/Ubuntu or "brew install ${debianPackage}" on macOS, then run the command again.`);
  }
  say(`installing ${debianPackage} (${why}) with apt-get`);
  if (!aptUpdated) {
    run('apt-get', ['update', '-qq']);
    aptUpdated = true;
  }
  run('apt-get', ['install', '-y', '-qq', debianPackage], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return which(binary);
}

/**
 * `npm ci` on a fresh clone (exactly the locked versions, and package-lock.json is never rewritten,
 * so `npm start` leaves a clean tree), then an Nx build (cached). An existing node_modules is left
 * alone: `npm ci` would delete it under whatever else is running from it.
 *
 * Once built, the processes this one starts see PODFLOW_BUILT=1 and skip the build: a suite that
 * runs a script (the client package's `pack-client.mjs`) would otherwise have Nx restore `dist/`
 * from its cache while other suites start services from it (a missing file fails their start).
 */
export function ensureInstalledAndBuilt() {
  if (process.env.PODFLOW_BUILT === '1') return;
  if (!existsSync(join(ROOT, 'node_modules', '.package-lock.json'))) {
    say('installing npm dependencies (npm ci, locked versions)');
    run('npm', ['ci', '--no-audit', '--no-fund']);
  }
  say('building (nx run-many -t build)');
  run('npx', ['nx', 'run-many', '-t', 'build', '--output-style=static'], { env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' }, stdio: ['ignore', 'ignore', 'inherit'] });
  process.env.PODFLOW_BUILT = '1';
}

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

function redisAnswers(port, password) {
  return new Promise((resolveAnswer) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    socket.once('connect', () => socket.write(`AUTH ${password}\r\nPING\r\n`));
    socket.on('data', (data) => {
      reply += data.toString();
      if (!reply.includes('\r\n', reply.indexOf('\r\n') + 2)) return;
      socket.destroy();
      resolveAnswer(reply.startsWith('+OK') && reply.includes('+PONG'));
    });
    socket.once('error', () => resolveAnswer(false));
  });
}

/**
 * Starts a private redis-server on a free loopback port with a generated password; data under
 * `dir`. The password is in a 0600 config file, never on a command line; the URL carries it.
 * Resolves once it answers PING.
 */
export async function startRedis(dir) {
  const binary = ensureSystemPackage('redis-server', 'redis-server', 'podflow keeps run state and queues in Redis');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const port = await freePort();
  const password = randomBytes(24).toString('hex');
  const configFile = join(dir, 'podflow-redis.conf');
  writeFileSync(
    configFile,
    [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'save 60 1000', 'appendonly yes', 'protected-mode yes', `requirepass ${password}`, ''].join('\n'),
    { mode: 0o600 },
  );
  chmodSync(configFile, 0o600);
  const child = spawn(binary, [configFile], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 100; i++) {
    if (await redisAnswers(port, password)) {
      return { url: `redis://:${password}@127.0.0.1:${port}`, port, stop: () => stopChild(child) };
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not start on port ${port}`);
}

/** One command to a local Redis node through redis-cli; the password goes in its environment, never its arguments. */
function redisCli(binary, password, args) {
  return spawnSync(binary, args, { encoding: 'utf8', env: { ...process.env, REDISCLI_AUTH: password } });
}

/**
 * Starts a private 3-master Redis Cluster on free loopback ports, data under `dir`: three
 * redis-server processes with cluster-enabled yes (cluster bus on free ports too) and one
 * generated password (requirepass and masterauth, in 0600 config files), joined with
 * `redis-cli --cluster create ... --cluster-replicas 0`. Resolves once every node reports
 * cluster_state:ok. `nodes` is REDIS_CLUSTER_NODES (`127.0.0.1:A,127.0.0.1:B,127.0.0.1:C`);
 * `stop()` stops all three.
 */
export async function startRedisCluster(dir) {
  const server = ensureSystemPackage('redis-server', 'redis-server', 'podflow keeps run state and queues in Redis');
  const cli = ensureSystemPackage('redis-cli', 'redis-tools', 'the test harness joins its Redis Cluster with redis-cli --cluster create');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const password = randomBytes(24).toString('hex');
  const ports = [];
  while (ports.length < 6) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  const nodes = [0, 1, 2].map((i) => ({ port: ports[i], busPort: ports[i + 3], dir: join(dir, `node-${i}`) }));
  const children = [];
  const stop = () => Promise.all(children.map((child) => stopChild(child)));
  try {
    for (const node of nodes) {
      mkdirSync(node.dir, { recursive: true, mode: 0o700 });
      const configFile = join(node.dir, 'redis.conf');
      const lines = [
        `port ${node.port}`, 'bind 127.0.0.1', 'protected-mode yes', `dir ${node.dir}`, "save ''", 'appendonly no',
        'cluster-enabled yes', 'cluster-config-file nodes.conf', 'cluster-node-timeout 5000', `cluster-port ${node.busPort}`,
        `requirepass ${password}`, `masterauth ${password}`, '',
      ];
      writeFileSync(configFile, lines.join('\n'), { mode: 0o600 });
      chmodSync(configFile, 0o600);
      children.push(spawn(server, [configFile], { stdio: ['ignore', 'ignore', 'inherit'] }));
    }
    for (const [i, node] of nodes.entries()) {
      let up = false;
      for (let attempt = 0; attempt < 100 && !up; attempt++) {
        up = await redisAnswers(node.port, password);
        if (!up && children[i].exitCode !== null) break;
        if (!up) await new Promise((r) => setTimeout(r, 100));
      }
      if (!up) throw new Error(`redis-server (cluster node ${i}) did not start on port ${node.port}`);
    }
    const addresses = nodes.map((node) => `127.0.0.1:${node.port}`);
    const created = redisCli(cli, password, ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes']);
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${created.stdout}${created.stderr}`);
    const states = () => nodes.map((node) => /cluster_state:(\w+)/.exec(redisCli(cli, password, ['-p', String(node.port), 'cluster', 'info']).stdout)?.[1]);
    for (let attempt = 0; attempt < 200; attempt++) {
      if (states().every((state) => state === 'ok')) return { nodes: addresses.join(','), password, ports: nodes.map((n) => n.port), stop };
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the Redis Cluster on ports ${nodes.map((n) => n.port).join(', ')} did not reach cluster_state:ok (${states().join(', ')})`);
  } catch (error) {
    await stop();
    throw error;
  }
}

export function stopChild(child, signal = 'SIGTERM') {
  return new Promise((resolveStop) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolveStop();
    child.once('exit', () => resolveStop());
    child.kill(signal);
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  });
}

/**
 * The process driver builds Python dependency layers with the sandboxes' own interpreter
 * (`/usr/bin/python3 -m pip`); Debian ships pip separately. Installed when missing and possible.
 */
export function ensurePip() {
  if (!existsSync('/usr/bin/python3')) return;
  if (spawnSync('/usr/bin/python3', ['-m', 'pip', '--version'], { stdio: 'ignore' }).status === 0) return;
  try {
    ensureSystemPackage('/usr/bin/pip3', 'python3-pip', 'Python nodes with dependencies are installed with /usr/bin/python3 -m pip');
  } catch (error) {
    say(`WARNING: ${error.message} Python nodes that declare dependencies will fail with DEPENDENCY_INSTALL_FAILED.`);
  }
}

/**
 * A C compiler builds podflow-launch (libs/sandbox/native), the one exec that sets a root worker's
 * sandboxes up (~3 ms of CPU less per sandbox than the sh chain it replaces). Without one the build
 * goes on and sandboxes start through the sh chain. Run it before the build.
 */
export function ensureCCompiler() {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return;
  try {
    ensureSystemPackage('cc', 'gcc', 'the build compiles podflow-launch, which starts process sandboxes');
  } catch (error) {
    say(`WARNING: ${error.message} Process sandboxes will start through the slower sh chain.`);
  }
}

/** bubblewrap isolates the process sandbox; without it podflow still runs, loudly unisolated. */
export function ensureBubblewrap() {
  try {
    return ensureSystemPackage('bwrap', 'bubblewrap', 'the process sandbox isolates code with bubblewrap');
  } catch (error) {
    say(`WARNING: ${error.message} Code will run WITHOUT isolation.`);
    return undefined;
  }
}

/**
 * slirp4netns and iproute2: a root worker gives executions granted egress (and dependency
 * installs) a network namespace of their own through them. Without them such executions fail
 * with a clear message; nothing else needs them.
 */
export function ensureSandboxNetworking() {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return;
  for (const [binary, debianPackage] of [['slirp4netns', 'slirp4netns'], ['ip', 'iproute2']]) {
    try {
      ensureSystemPackage(binary, debianPackage, 'sandboxes granted network egress get their own network namespace');
    } catch (error) {
      say(`WARNING: ${error.message} Executions granted egress and dependency installs will fail.`);
    }
  }
}

export function gitDescribe() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** The bucket `npm test` creates on its private MinIO (PODFLOW_TEST_S3_BUCKET). */
export const TEST_BUCKET = 'podflow-test';

/**
 * Runs Jest with `config` and `args` against a private redis-server (REDIS_URL) and a private
 * MinIO with a `podflow-test` bucket (PODFLOW_TEST_S3_ENDPOINT, PODFLOW_TEST_S3_BUCKET and AWS_*
 * credentials), both on free ports, stopping them afterwards. Resolves Jest's exit status.
 *
 * `redis: 'cluster'` runs it against a private 3-master Redis Cluster instead
 * (startRedisCluster; REDIS_CLUSTER_NODES, REDIS_PASSWORD and PODFLOW_TEST_REDIS=cluster, no
 * REDIS_URL). `clusterArgs`: after the first run, Jest runs again with these arguments against
 * such a cluster (the same MinIO); the status is the first failure's.
 */
export async function runJestWithServices(config, args, env = process.env, { redis: redisKind = 'server', clusterArgs } = {}) {
  // Imported here: minio.mjs imports this module, and a load-time cycle would see it half-evaluated.
  const { createBucket, startMinio } = await import('./minio.mjs');
  const dataDir = mkdtempSync(join(tmpdir(), 'podflow-test-services-'));
  const stops = [];
  try {
    const minio = await startMinio(join(dataDir, 'minio'));
    stops.push(minio.stop);
    await createBucket(minio, TEST_BUCKET);
    say(`test minio at ${minio.endpoint}, bucket ${TEST_BUCKET}`);
    // The suites' S3 clients find the MinIO credentials through the SDK's default chain (env);
    // a profile or session token from the caller's shell would take precedence or break signing.
    const baseEnv = { ...env };
    delete baseEnv.AWS_PROFILE;
    delete baseEnv.AWS_SESSION_TOKEN;
    for (const name of ['REDIS_URL', 'REDIS_CLUSTER_NODES', 'REDIS_SENTINELS', 'REDIS_PASSWORD', 'PODFLOW_TEST_REDIS']) delete baseEnv[name];
    Object.assign(baseEnv, {
      PODFLOW_TEST_S3_ENDPOINT: minio.endpoint,
      PODFLOW_TEST_S3_BUCKET: TEST_BUCKET,
      AWS_ACCESS_KEY_ID: minio.accessKey,
      AWS_SECRET_ACCESS_KEY: minio.secretKey,
      AWS_REGION: 'us-east-1',
    });
    const jest = (jestArgs, redisEnv) =>
      spawnSync(process.execPath, [join(ROOT, 'node_modules/jest/bin/jest.js'), '--config', config, ...jestArgs], { stdio: 'inherit', cwd: ROOT, env: { ...baseEnv, ...redisEnv } }).status ?? 1;
    const onCluster = async (jestArgs) => {
      const cluster = await startRedisCluster(join(dataDir, 'redis-cluster'));
      stops.push(cluster.stop);
      say(`test Redis Cluster at ${cluster.nodes} (3 masters, password-protected)`);
      return jest(jestArgs, { REDIS_CLUSTER_NODES: cluster.nodes, REDIS_PASSWORD: cluster.password, PODFLOW_TEST_REDIS: 'cluster' });
    };
    if (redisKind === 'cluster') return await onCluster(args);
    const redis = await startRedis(join(dataDir, 'redis'));
    stops.push(redis.stop);
    say(`test redis at 127.0.0.1:${redis.port} (password-protected)`);
    const status = jest(args, { REDIS_URL: redis.url });
    if (!clusterArgs) return status;
    say(`again against a Redis Cluster: jest ${clusterArgs.join(' ')}`);
    const clusterStatus = await onCluster(clusterArgs);
    return status !== 0 ? status : clusterStatus;
  } finally {
    for (const stop of stops.reverse()) await stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
