import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_RUNNER_LIMITS, type JsonObject, type Language, type RunnerLimits, type RunnerResponse } from '@podflow/protocol';
import { runnerArgv, runnerAssets } from '../assets';
import { parseRunnerOutput } from '../framing';

/** Debian's interpreter: the `python3` on PATH may be a pyenv shim with another version. */
export const PYTHON = '/usr/bin/python3';

const workdirs: string[] = [];

/** A fresh working directory, removed by `removeWorkdirs()`. */
export function createWorkdir(): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'podflow-runner-')));
  workdirs.push(dir);
  return dir;
}

export function removeWorkdirs(): void {
  for (const dir of workdirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export interface RunOptions {
  args?: JsonObject;
  limits?: Partial<RunnerLimits>;
  /** Defaults to a fresh `createWorkdir()`. */
  workdir?: string;
  /** Raw stdin instead of a request built from the other options. */
  rawRequest?: string;
  env?: NodeJS.ProcessEnv;
  /** Hand the request over as `--request <file>` instead of on stdin. */
  requestFile?: boolean;
  /** main may return any JSON value (RunnerRequest `returnAny`). */
  returnAny?: boolean;
  /** Node runner only: start it as a warm sandbox does (`--prewarm`), its warm-up done before the request. */
  prewarm?: boolean;
}

export interface RunResult {
  /** Parsed framed response; undefined when the runner wrote none. */
  response: RunnerResponse | undefined;
  stdout: string;
  stderr: string;
  exitCode: number | null;
  workdir: string;
  nonce: string;
}

/** Starts the real runner for `language` as a child process, exactly as a driver would. */
export function runRunner(language: Language, code: string, options: RunOptions = {}): Promise<RunResult> {
  const workdir = options.workdir ?? createWorkdir();
  const nonce = randomUUID();
  const request = options.rawRequest ?? JSON.stringify({
    language,
    code,
    args: options.args ?? {},
    workdir,
    limits: { ...DEFAULT_RUNNER_LIMITS, ...options.limits },
    nonce,
    ...(options.returnAny ? { returnAny: true } : {}),
  });
  const [command, ...argv] = runnerArgv(language, runnerAssets(), { python: PYTHON, node: process.execPath });
  if (options.prewarm) {
    if (language === 'python') throw new Error('runRunner: prewarm is for the Node runner (the Python runner has no warm-up)');
    argv.push('--prewarm');
  }
  if (options.requestFile) {
    const file = join(createWorkdir(), 'request.json');
    writeFileSync(file, request);
    argv.push('--request', file);
  }
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? { PATH: process.env.PATH ?? '' } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (exitCode) => {
      const stdout = Buffer.concat(out).toString('utf8');
      resolve({ response: parseRunnerOutput(stdout, nonce), stdout, stderr: Buffer.concat(err).toString('utf8'), exitCode, workdir, nonce });
    });
    child.stdin.end(options.requestFile ? '' : request);
  });
}

/** The response of a run that must have produced one. */
export async function respond(language: Language, code: string, options: RunOptions = {}): Promise<RunnerResponse & { workdir: string }> {
  const result = await runRunner(language, code, options);
  if (!result.response || result.exitCode !== 0) {
    throw new Error(`runner gave no response (exit ${result.exitCode}).\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
  return { ...result.response, workdir: result.workdir };
}
