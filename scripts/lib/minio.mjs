// A private MinIO for the test suites: the real S3-compatible server the S3 store is tested
// against, never a fake. MinIO no longer publishes release binaries for every platform, so it is
// built once from its Go module at a pinned version and cached under
// $PODFLOW_CACHE_DIR/minio/<version>/minio (default ~/.cache/podflow/minio/...).
// PODFLOW_MINIO_BIN points at an existing minio binary instead.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE_DIR, freePort, say, stopChild } from './services.mjs';

/** `go version -m` of a `go install github.com/minio/minio@latest` (February 2026). */
export const MINIO_VERSION = 'v0.0.0-20260212201848-7aac2a2c5b7c';
const MINIO_MODULE = 'github.com/minio/minio';
/** The `go` directive of MinIO's go.mod at MINIO_VERSION. */
const MINIO_MIN_GO = [1, 24];

function minioBinaryPath() {
  return join(CACHE_DIR, 'minio', MINIO_VERSION, 'minio');
}

export function findGo() {
  for (const candidate of ['go', '/usr/local/go/bin/go', join(process.env.HOME ?? '', 'go', 'bin', 'go')]) {
    const found = spawnSync(candidate, ['env', 'GOVERSION'], { encoding: 'utf8' });
    if (found.status === 0) return { go: candidate, version: found.stdout.trim() };
  }
  return undefined;
}

function goIsAtLeast(version, [major, minor]) {
  const match = /^go(\d+)\.(\d+)/.exec(version);
  if (!match) return true; // a development toolchain ("devel ..."): let go install decide
  const [have, haveMinor] = [Number(match[1]), Number(match[2])];
  return have > major || (have === major && haveMinor >= minor);
}

/**
 * Path of a minio binary at MINIO_VERSION: the cached one, or one built now with
 * `go install github.com/minio/minio@<version>` (a few minutes the first time).
 */
export async function ensureMinio() {
  if (process.env.PODFLOW_MINIO_BIN) return process.env.PODFLOW_MINIO_BIN;
  const binary = minioBinaryPath();
  if (existsSync(binary)) return binary;
  const toolchain = findGo();
  const need = `Go ${MINIO_MIN_GO.join('.')} or newer`;
  if (!toolchain) {
    throw new Error(`the tests need MinIO, which is built from source and needs ${need}; install Go (https://go.dev/dl/, or "apt-get install golang" when recent enough), or set PODFLOW_MINIO_BIN to a minio binary`);
  }
  if (!goIsAtLeast(toolchain.version, MINIO_MIN_GO)) {
    throw new Error(`MinIO ${MINIO_VERSION} needs ${need} (its go.mod) but ${toolchain.go} is ${toolchain.version}; install a newer Go (https://go.dev/dl/) or set PODFLOW_MINIO_BIN to a minio binary`);
  }
  const dir = join(CACHE_DIR, 'minio', MINIO_VERSION);
  const gobin = join(dir, `.build-${process.pid}`);
  mkdirSync(gobin, { recursive: true });
  say(`building MinIO ${MINIO_VERSION} with ${toolchain.version} (go install, first run only; a few minutes)`);
  const started = Date.now();
  try {
    await goInstall(toolchain.go, gobin, started);
    // Rename into place: a concurrent or interrupted build never leaves a half-written binary.
    chmodSync(join(gobin, 'minio'), 0o755);
    renameSync(join(gobin, 'minio'), binary);
  } finally {
    rmSync(gobin, { recursive: true, force: true });
  }
  say(`MinIO built in ${Math.round((Date.now() - started) / 1000)} s, cached at ${binary}`);
  return binary;
}

function goInstall(go, gobin, started) {
  return new Promise((resolveBuild, reject) => {
    const output = [];
    const child = spawn(go, ['install', `${MINIO_MODULE}@${MINIO_VERSION}`], {
      env: { ...process.env, GOBIN: gobin },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (data) => {
      output.push(data.toString());
      if (output.length > 400) output.splice(0, output.length - 400);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const heartbeat = setInterval(() => say(`still building MinIO (${Math.round((Date.now() - started) / 1000)} s)`), 30_000);
    child.on('error', (error) => {
      clearInterval(heartbeat);
      reject(new Error(`could not run ${go}: ${error.message}`));
    });
    child.on('exit', (code) => {
      clearInterval(heartbeat);
      if (code === 0) return resolveBuild();
      const tail = output.join('').split('\n').slice(-30).join('\n');
      reject(new Error(`go install ${MINIO_MODULE}@${MINIO_VERSION} failed with exit code ${code}:\n${tail}\nCheck network access to the Go module proxy (GOPROXY) and the Go version, or set PODFLOW_MINIO_BIN to a minio binary.`));
    });
  });
}

/**
 * Starts a private MinIO under `dir` (data in dir/data) on a free loopback port with random root
 * credentials. Resolves once `GET /minio/health/live` answers 200.
 */
export async function startMinio(dir) {
  const binary = await ensureMinio();
  const dataDir = join(dir, 'data');
  // Outside the data dir: MinIO takes every top-level directory there for a bucket.
  const certsDir = join(dir, 'certs');
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(certsDir, { recursive: true });
  const [port, consolePort] = [await freePort(), await freePort()];
  const accessKey = `podflow-${randomBytes(4).toString('hex')}`;
  const secretKey = randomBytes(24).toString('hex');
  // To a file, not a pipe: Jest runs under spawnSync, and nobody would drain a pipe meanwhile.
  const logPath = join(dir, 'minio.log');
  const log = openSync(logPath, 'a');
  const child = spawn(binary, ['server', dataDir, '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`, '--certs-dir', certsDir], {
    env: { ...process.env, MINIO_ROOT_USER: accessKey, MINIO_ROOT_PASSWORD: secretKey, MINIO_BROWSER: 'off', MINIO_UPDATE: 'off', MINIO_CI_CD: '1' },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const endpoint = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    const live = await fetch(`${endpoint}/minio/health/live`).then((r) => r.status === 200, () => false);
    if (live) return { endpoint, accessKey, secretKey, stop: () => stopChild(child) };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`minio did not start on ${endpoint}:\n${readFileSync(logPath, 'utf8').slice(-3000)}`);
}

/**
 * Creates `bucket` on a MinIO from startMinio with the AWS SDK (installed by `npm install`),
 * retrying while MinIO finishes initializing after it reports live.
 */
export async function createBucket(minio, bucket) {
  const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    endpoint: minio.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
  });
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await client.send(new CreateBucketCommand({ Bucket: bucket }));
        return;
      } catch (error) {
        if (attempt >= 50) throw new Error(`could not create bucket ${bucket} on ${minio.endpoint}: ${error.message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    client.destroy();
  }
}
