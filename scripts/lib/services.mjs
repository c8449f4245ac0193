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
 */
export function ensureInstalledAndBuilt() {
  if (!existsSync(join(ROOT, 'node_modules', '.package-lock.json'))) {
    say('installing npm dependencies (npm ci, locked versions)');
    run('npm', ['ci', '--no-audit', '--no-fund']);
  }
  say('building (nx run-many -t build)');
  run('npx', ['nx', 'run-many', '-t', 'build', '--output-style=static'], { env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' }, stdio: ['ignore', 'ignore', 'inherit'] });
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
 */
export async function runJestWithServices(config, args, env = process.env) {
  // Imported here: minio.mjs imports this module, and a load-time cycle would see it half-evaluated.
  const { createBucket, startMinio } = await import('./minio.mjs');
  const dataDir = mkdtempSync(join(tmpdir(), 'podflow-test-services-'));
  const stops = [];
  try {
    const redis = await startRedis(join(dataDir, 'redis'));
    stops.push(redis.stop);
    say(`test redis at 127.0.0.1:${redis.port} (password-protected)`);
    const minio = await startMinio(join(dataDir, 'minio'));
    stops.push(minio.stop);
    await createBucket(minio, TEST_BUCKET);
    say(`test minio at ${minio.endpoint}, bucket ${TEST_BUCKET}`);
    // The suites' S3 clients find the MinIO credentials through the SDK's default chain (env);
    // a profile or session token from the caller's shell would take precedence or break signing.
    const baseEnv = { ...env };
    delete baseEnv.AWS_PROFILE;
    delete baseEnv.AWS_SESSION_TOKEN;
    const jest = spawnSync(process.execPath, [join(ROOT, 'node_modules/jest/bin/jest.js'), '--config', config, ...args], {
      stdio: 'inherit',
      cwd: ROOT,
      env: {
        ...baseEnv,
        REDIS_URL: redis.url,
        PODFLOW_TEST_S3_ENDPOINT: minio.endpoint,
        PODFLOW_TEST_S3_BUCKET: TEST_BUCKET,
        AWS_ACCESS_KEY_ID: minio.accessKey,
        AWS_SECRET_ACCESS_KEY: minio.secretKey,
        AWS_REGION: 'us-east-1',
      },
    });
    return jest.status ?? 1;
  } finally {
    for (const stop of stops.reverse()) await stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
