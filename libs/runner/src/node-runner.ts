/**
 * podflow in-sandbox runner for TypeScript and JavaScript Code nodes. Bundled by
 * `scripts/bundle.mjs` into one dependency-free file, `dist/node-runner.js`, and started by a
 * sandbox driver as `node node-runner.js [--request PATH]`.
 *
 * Reads one RunnerRequest from stdin (or PATH), runs the user's `main` in `request.workdir` and
 * writes exactly one RunnerResponse to fd 1, framed by the nonce markers (then, with `emitFiles`, the
 * captured files' bytes). Exit status 0 whenever a response was written; 2 when the request could
 * not be read far enough to learn its nonce.
 */
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { DEFAULT_RUNNER_LIMITS, filesEndMarker, requestReceivedMarker, type JsonObject, type RunnerFile, type RunnerLimits, type RunnerRequest, type RunnerResponse } from '@podflow/protocol';
import { frameFileHeader, frameResponse } from './framing';
import { captureFiles, readCapturedFile, snapshot, type Snapshot } from './node-runner/file-capture';
import { WriteOrder, installWriteHooks } from './node-runner/write-order';
import { TailBuffer, captureStdio } from './node-runner/log-capture';
import { normalizeOutput } from './node-runner/output-validation';
import { codeFailure, loadUserMain, prewarmTransforms, userFilename } from './node-runner/user-code';
import { UserFailure } from './node-runner/user-failure';

// Saved before any user code runs: the code may replace or wrap them.
const writeSync = fs.writeSync;
const exit = process.exit.bind(process);

type Outcome = { ok: true; output: JsonObject } | { ok: false; error: UserFailure };

interface ParsedRequest {
  request?: RunnerRequest & { language: 'typescript' | 'javascript' };
  /** Known whenever a response can be framed, even for a malformed request. */
  nonce?: string;
  /** Read like the nonce, so even an INTERNAL response for a malformed request ends its file frames. */
  emitFiles?: boolean;
  /** `emitFiles` or `announce`: say on stderr that the request arrived, before any user code. */
  announce?: boolean;
  problem?: string;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function isEagain(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'EAGAIN';
}

/** Writes every byte even if the fd was left non-blocking (then writes may be partial or EAGAIN). */
function writeAll(fd: number, data: Buffer): void {
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += writeSync(fd, data, offset, data.length - offset);
    } catch (error) {
      if (!isEagain(error)) throw error;
      sleepMs(2);
    }
  }
}

/**
 * `emitFiles`: after the response, each listed file's current bytes framed by a header with their
 * actual length and the captured sha256 (so a reader detects a file changed since), then the end
 * marker, which is written even without files so the reader knows the stream is complete.
 */
function writeFileFrames(nonce: string, root: string | undefined, files: RunnerFile[]): void {
  for (const file of files) {
    // Paths are relative to the workdir root, not to the cwd, which the code may have changed. (No
    // root: the workdir was never entered, and there are no files.)
    const content = root === undefined ? Buffer.alloc(0) : readCapturedFile(root, file.path);
    writeAll(1, Buffer.from(frameFileHeader(nonce, { ...file, size: content.length }), 'utf8'));
    writeAll(1, content);
    writeAll(1, Buffer.from('\n'));
  }
  writeAll(1, Buffer.from(`${filesEndMarker(nonce)}\n`, 'utf8'));
}

function readAll(fd: number): Buffer {
  const chunks: Buffer[] = [];
  const buffer = Buffer.allocUnsafe(64 * 1024);
  for (;;) {
    let read: number;
    try {
      read = fs.readSync(fd, buffer, 0, buffer.length, null);
    } catch (error) {
      if (isEagain(error)) {
        sleepMs(2);
        continue;
      }
      throw error;
    }
    if (read === 0) return Buffer.concat(chunks);
    chunks.push(Buffer.from(buffer.subarray(0, read)));
  }
}

/**
 * Runs the first, slow passes of what every execution does (Sucrase's transforms are ~6 ms cold,
 * ~0.6 ms warm) on sample code, and wraps node:fs for the write order (~3 ms), before any request
 * exists: nothing of a tenant is involved.
 */
function prewarm(): void {
  try {
    prewarmTransforms();
    installWriteHooks();
    // The request's and the response's paths, on a sample (V8 compiles a function at its first call).
    const sample = parseRequest(Buffer.from(JSON.stringify({ nonce: 'prewarm', language: 'javascript', code: '', args: {}, workdir: '/' })));
    frameResponse(sample.nonce!, { ok: true, output: normalizeOutput({ n: 1 }, DEFAULT_RUNNER_LIMITS.maxOutputBytes), files: [], logs: { stdout: '', stderr: '', truncated: false }, durationMs: 0 });
  } catch {
    // A warm-up that fails only costs the speed it was for.
  }
}

function readRequestBytes(argv: string[]): Buffer {
  const index = argv.indexOf('--request');
  if (index < 0) return readAll(0);
  const file = argv[index + 1];
  if (!file) throw new Error('--request needs a file path');
  return fs.readFileSync(file);
}

function parseLimits(value: unknown): RunnerLimits {
  const limits = { ...DEFAULT_RUNNER_LIMITS };
  if (typeof value !== 'object' || value === null) return limits;
  for (const key of Object.keys(limits) as (keyof RunnerLimits)[]) {
    const given = (value as Record<string, unknown>)[key];
    if (typeof given === 'number' && Number.isFinite(given) && given >= 0) limits[key] = Math.floor(given);
  }
  return limits;
}

function isNodeLanguage(value: unknown): value is 'typescript' | 'javascript' {
  return value === 'typescript' || value === 'javascript';
}

function parseRequest(raw: Buffer): ParsedRequest {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (error) {
    // Best effort: a readable nonce still lets the driver see why, as a framed INTERNAL error.
    const nonce = /"nonce"\s*:\s*"([A-Za-z0-9_.:-]+)"/.exec(raw.toString('utf8'))?.[1];
    return { nonce, problem: `request is not valid JSON: ${(error as Error).message}` };
  }
  const record = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  if (typeof record.nonce !== 'string' || !record.nonce) return { problem: 'request is not an object with a string nonce' };
  const nonce = record.nonce;
  const parsed = parseFields(record, nonce);
  return { ...parsed, announce: record.emitFiles === true || record.announce === true };
}

function parseFields(record: Record<string, unknown>, nonce: string): ParsedRequest {
  const emitFiles = record.emitFiles === true;
  const language = record.language;
  if (!isNodeLanguage(language)) {
    return { nonce, emitFiles, problem: `this runner runs typescript and javascript, not ${JSON.stringify(language)}` };
  }
  const args = record.args;
  if (typeof record.code !== 'string') return { nonce, emitFiles, problem: "request field 'code' is missing or not a string" };
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return { nonce, emitFiles, problem: "request field 'args' is not an object" };
  if (typeof record.workdir !== 'string') return { nonce, emitFiles, problem: "request field 'workdir' is missing or not a string" };
  const request = { ...(record as unknown as RunnerRequest), language, limits: parseLimits(record.limits) };
  return { nonce, emitFiles, request };
}

function run(): void {
  const argv = process.argv.slice(2);
  // A warm sandbox (`--prewarm`) compiles the code paths every execution needs while it waits.
  if (argv.includes('--prewarm')) prewarm();
  let started = performance.now();
  let parsed: ParsedRequest;
  try {
    const bytes = readRequestBytes(argv);
    // Timed from the request: a warm sandbox may have waited a long time for it.
    started = performance.now();
    parsed = parseRequest(bytes);
  } catch (error) {
    parsed = { problem: `cannot read the request: ${(error as Error).message}` };
  }
  const nonce = parsed.nonce;
  if (nonce === undefined) {
    writeAll(2, Buffer.from(`podflow runner: ${parsed.problem}\n`));
    exit(2);
    return;
  }
  // A worker adopting this sandbox reads the log for this line: the request must not be sent again;
  // the process driver reads it as "the sandbox is set up: what follows is the code's doing".
  if (parsed.announce) writeAll(2, Buffer.from(`${requestReceivedMarker(nonce)}\n`));
  const limits = parsed.request?.limits ?? DEFAULT_RUNNER_LIMITS;
  const stdout = new TailBuffer(limits.maxLogBytes);
  const stderr = new TailBuffer(limits.maxLogBytes);
  let settled = false;
  // Set once the workdir is entered and snapshotted; before that there are no files to capture.
  const workspace: { root?: string; before?: Snapshot; order?: WriteOrder } = {};

  /** The single way out: the first outcome wins, later ones (async throws...) are ignored. */
  const respond = (outcome: Outcome): void => {
    if (settled) return;
    settled = true;
    // From here on the writes are the runner's own, not the code's.
    workspace.order?.stop();
    try {
      let final = outcome;
      let files: RunnerFile[] = [];
      if (workspace.root && workspace.before) {
        try {
          files = captureFiles(workspace.root, workspace.before, limits, outcome.ok, (rel) => workspace.order?.of(rel));
        } catch (error) {
          if (!(error instanceof UserFailure)) throw error;
          final = { ok: false, error };
        }
      }
      const logs = { stdout: stdout.text(), stderr: stderr.text(), truncated: stdout.truncated || stderr.truncated };
      const durationMs = Math.round(performance.now() - started);
      const response: RunnerResponse = final.ok
        ? { ok: true, output: final.output, files, logs, durationMs }
        : { ok: false, error: final.error.toNodeError(), files, logs, durationMs };
      writeAll(1, Buffer.from(frameResponse(nonce, response), 'utf8'));
      if (parsed.emitFiles) writeFileFrames(nonce, workspace.root, files);
    } catch (error) {
      writeAll(2, Buffer.from(`podflow runner: failed to respond: ${(error as Error)?.stack ?? String(error)}\n`));
      exit(3);
    }
    exit(0);
  };
  const request = parsed.request;
  if (!request) {
    respond({ ok: false, error: new UserFailure('INTERNAL', parsed.problem ?? 'malformed request') });
    return;
  }
  try {
    process.chdir(request.workdir);
  } catch (error) {
    respond({ ok: false, error: new UserFailure('INTERNAL', `cannot enter workdir: ${(error as Error).message}`) });
    return;
  }
  const root = fs.realpathSync(process.cwd());
  const filename = userFilename(request.language, root);
  workspace.root = root;
  workspace.before = snapshot(root);
  // Before the code is loaded: it may keep references to node:fs functions.
  workspace.order = WriteOrder.record(root);
  captureStdio(stdout, stderr);
  process.argv = [process.argv[0], filename];
  // Frames are filtered down to the user's file afterwards; keep enough to survive that.
  Error.stackTraceLimit = 50;
  const fail = (error: unknown): void => respond({ ok: false, error: error instanceof UserFailure ? error : codeFailure(error, filename) });
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  process.on('beforeExit', () =>
    fail(new UserFailure('CODE_EXECUTION_FAILED', 'main returned a Promise that never settled: nothing was left to wait for (a missing resolve()?)')),
  );
  process.on('exit', (code) =>
    fail(
      new UserFailure(
        'CODE_EXECUTION_FAILED',
        `the code called process.exit(${code}) before main returned; return an object instead, or throw an error to fail the node`,
        'ProcessExit',
      ),
    ),
  );
  void (async () => {
    try {
      const main = loadUserMain(request.language, request.code, root);
      const result: unknown = await main(request.args);
      // An agent tool call may return any JSON value: it travels as the output { value } (undefined is null).
      const output = request.returnAny ? { value: result === undefined ? null : result } : result;
      respond({ ok: true, output: normalizeOutput(output, limits.maxOutputBytes) });
    } catch (error) {
      fail(error);
    }
  })();
}

run();
