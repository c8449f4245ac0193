import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEFAULT_RUNNER_LIMITS,
  fileFrameMarker,
  filesEndMarker,
  responseEndMarker,
  type JsonObject,
  type Language,
  type RunnerRequest,
  type RunnerResponse,
  requestReceivedMarker,
} from '@podflow/protocol';
import { runnerArgv, runnerAssets } from './assets';
import { frameFileHeader, frameResponse, parseFileFrames, parseRunnerOutput, parseRunnerOutputBuffer } from './framing';
import { PYTHON, createWorkdir, removeWorkdirs } from './testing/run-runner';

// emitFiles: the captured files' bytes streamed after the response, for drivers that can only
// read the runner's stdout (a Kubernetes attach stream).
const NONCE = 'nonce-1';
const logs = { stdout: '', stderr: '', truncated: false };
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const MiB = 1024 * 1024;

/** Binary content built to trip a parser that searches for markers: NULs and whole forged frames for `nonce`. */
function hostileBytes(nonce: string, size: number): Buffer {
  const forged = frameResponse(nonce, { ok: true, output: { forged: true }, files: [], logs, durationMs: 0 });
  const fakeFrame = `${frameFileHeader(nonce, { path: 'fake', size: 1, sha256: '0'.repeat(64) })}X\n${filesEndMarker(nonce)}\n`;
  return Buffer.concat([Buffer.alloc(3), randomBytes(size >> 1), Buffer.from(`${forged}${fakeFrame}`), Buffer.alloc(1000), randomBytes(size >> 1)]);
}

interface Emitted {
  path: string;
  content: Buffer;
  /** Defaults to the content's sha256. */
  sha256?: string;
}

/** A runner's stdout with emitFiles: the response listing `files`, their frames, then `tail` (the end marker by default). */
function emittedStdout(files: Emitted[], options: { before?: string; tail?: string } = {}): { stdout: Buffer; response: RunnerResponse } {
  const listed = files.map((file) => ({ path: file.path, size: file.content.length, sha256: file.sha256 ?? sha256(file.content) }));
  const response: RunnerResponse = { ok: true, output: { n: files.length }, files: listed, logs, durationMs: 1 };
  const frames = files.flatMap((file, index) => [Buffer.from(frameFileHeader(NONCE, listed[index])), file.content, Buffer.from('\n')]);
  const stdout = Buffer.concat([
    Buffer.from(`${options.before ?? ''}${frameResponse(NONCE, response)}`),
    ...frames,
    Buffer.from(options.tail ?? `${filesEndMarker(NONCE)}\n`),
  ]);
  return { stdout, response };
}

const problemOf = (stdout: Buffer): string | undefined => {
  const result = parseFileFrames(stdout, NONCE);
  return result.ok ? undefined : result.problem;
};

describe('parseFileFrames / parseRunnerOutputBuffer', () => {
  it('reads binary files holding NULs and forged markers for the same nonce, and the real response', () => {
    const hostile = hostileBytes(NONCE, 64 * 1024);
    const files = [
      { path: 'out/hostile.bin', content: hostile },
      { path: 'empty.txt', content: Buffer.alloc(0) },
      { path: 'text.txt', content: Buffer.from('héllo ✓\n') },
    ];
    const { stdout, response } = emittedStdout(files, { before: 'noise without a newline' });
    expect(parseRunnerOutputBuffer(stdout, NONCE)).toEqual(response);
    const result = parseFileFrames(stdout, NONCE);
    expect(result).toEqual({ ok: true, files: files.map((file) => ({ ...file, size: file.content.length, sha256: sha256(file.content) })) });
    // What parseRunnerOutputBuffer is for: searching the whole text finds the forgery inside the file.
    expect(parseRunnerOutput(stdout.toString('utf8'), NONCE)).toMatchObject({ output: { forged: true } });
  });

  it('reads zero files', () => {
    const { stdout, response } = emittedStdout([]);
    expect(parseFileFrames(stdout, NONCE)).toEqual({ ok: true, files: [] });
    expect(parseRunnerOutputBuffer(stdout, NONCE)).toEqual(response);
  });

  it('reads a 3 MiB file', () => {
    const content = randomBytes(3 * MiB);
    const result = parseFileFrames(emittedStdout([{ path: 'big.bin', content }]).stdout, NONCE);
    expect(result.ok && result.files[0].content.equals(content)).toBe(true);
  });

  it('ignores anything after the files-end marker', () => {
    const { stdout } = emittedStdout([{ path: 'a', content: Buffer.from('a') }], { tail: `${filesEndMarker(NONCE)}\ntrailing ${responseEndMarker(NONCE)}\n` });
    expect(parseFileFrames(stdout, NONCE)).toMatchObject({ ok: true, files: [{ path: 'a' }] });
  });

  it('without file frames: parseRunnerOutputBuffer reads the response, parseFileFrames says so', () => {
    const response: RunnerResponse = { ok: true, output: {}, files: [], logs, durationMs: 1 };
    const stdout = Buffer.from(`noise${frameResponse(NONCE, response)}`);
    expect(parseRunnerOutputBuffer(stdout, NONCE)).toEqual(response);
    expect(problemOf(stdout)).toMatch(/no file frames follow a response for nonce nonce-1/);
    expect(parseRunnerOutputBuffer(Buffer.from('no response'), NONCE)).toBeUndefined();
  });

  it('does not take frames for another nonce', () => {
    const { stdout } = emittedStdout([]);
    expect(parseFileFrames(stdout, 'other')).toMatchObject({ ok: false });
    expect(parseRunnerOutputBuffer(stdout, 'other')).toBeUndefined();
  });

  const content = Buffer.from('0123456789');
  const header = (fields: string) => `${fileFrameMarker(NONCE)} ${fields}\n`;
  it.each<[string, Buffer, RegExp]>([
    ['a stream cut inside the content', emittedStdout([{ path: 'a', content }]).stdout.subarray(0, -(filesEndMarker(NONCE).length + 5)), /file frame 1 \("a"\) is truncated: 7 of its 10 bytes arrived/],
    ['a stream cut right after the content', emittedStdout([{ path: 'a', content }], { tail: '' }).stdout.subarray(0, -1), /file frame 1 \("a"\) is truncated: the stream ends right after its 10 bytes/],
    ['a stream cut inside a header', emittedStdout([], { tail: `${fileFrameMarker(NONCE)} {"path":"a","si` }).stdout, /the stream ends inside the header of file frame 1/],
    ['a missing files-end marker', emittedStdout([{ path: 'a', content }], { tail: '' }).stdout, /files-end marker is missing: the stream ends after 1 complete file frame\(s\)/],
    ['a files-end marker cut short', emittedStdout([{ path: 'a', content }], { tail: '<<<PODFLOW-FILES-E' }).stdout, /files-end marker is missing/],
    ['a sha256 mismatch', emittedStdout([{ path: 'a', content: Buffer.from('x') }, { path: 'b', content, sha256: sha256(Buffer.from('other')) }]).stdout, /file frame 2 \("b"\) has sha256 [0-9a-f]{64}, not the captured/],
    ['a header size that is too small', emittedStdout([], { tail: `${header(`{"path":"a","size":3,"sha256":"${sha256(content)}"}`)}${content}\n` }).stdout, /file frame 1 \("a"\) is not followed by a newline after its 3 bytes/],
    ['garbage instead of a frame', emittedStdout([{ path: 'a', content }], { tail: 'garbage\n' }).stdout, /byte \d+: expected file frame 2 or the files-end marker, found "garbage\\n"/],
    ['a header that is not JSON', emittedStdout([], { tail: header('{path: a}') }).stdout, /file frame 1 has a malformed header: not JSON/],
    ['a header that is not an object', emittedStdout([], { tail: header('[1]') }).stdout, /malformed header: not a JSON object/],
    ['a path escaping the workdir', emittedStdout([], { tail: header(`{"path":"../etc/passwd","size":0,"sha256":"${sha256(Buffer.alloc(0))}"}`) }).stdout, /path "..\/etc\/passwd" is not a relative path/],
    ['an absolute path', emittedStdout([], { tail: header(`{"path":"/etc/passwd","size":0,"sha256":"${sha256(Buffer.alloc(0))}"}`) }).stdout, /path "\/etc\/passwd" is not a relative path/],
    ['a negative size', emittedStdout([], { tail: header(`{"path":"a","size":-1,"sha256":"${sha256(content)}"}`) }).stdout, /size -1 is not a byte count/],
    ['a bad sha256', emittedStdout([], { tail: header('{"path":"a","size":0,"sha256":"XYZ"}') }).stdout, /sha256 "XYZ" is not a hex sha256/],
    ['an endless header line', emittedStdout([], { tail: `${fileFrameMarker(NONCE)} ${'x'.repeat(70 * 1024)}\n` }).stdout, /malformed header: no newline within 65536 bytes/],
  ])('reports %s', (_name, stdout, problem) => {
    expect(problemOf(stdout)).toMatch(problem);
  });
});

interface RawRun {
  stdout: Buffer;
  stderr: string;
  exitCode: number | null;
}

/** Starts the real runner and keeps its stdout as bytes (the shared harness decodes it as text). */
function runRaw(language: Language, request: Partial<RunnerRequest> & { nonce: string }): Promise<RawRun> {
  const [command, ...argv] = runnerArgv(language, runnerAssets(), { python: PYTHON, node: process.execPath });
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (exitCode) => resolve({ stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8'), exitCode }));
    child.stdin.end(JSON.stringify(request));
  });
}

const LANGUAGES: Language[] = ['python', 'typescript', 'javascript'];

/** Writes a text file and copies `source` (outside the workdir) to data.bin, then leaves the workdir. */
const WRITE_FILES = {
  python: [
    'import os, shutil',
    'def main(args):',
    '    os.makedirs("notes", exist_ok=True)',
    '    with open("notes/hello.txt", "w", encoding="utf-8") as handle:',
    '        handle.write(args["text"])',
    '    shutil.copyfile(args["source"], "data.bin")',
    '    os.chdir("/")',
    '    if args.get("fail"):',
    '        raise ValueError("after writing")',
    '    return {"done": True}',
  ].join('\n'),
  node: [
    "import * as fs from 'node:fs';",
    'export function main({ text, source, fail }) {',
    "  fs.mkdirSync('notes', { recursive: true });",
    "  fs.writeFileSync('notes/hello.txt', text);",
    "  fs.copyFileSync(source, 'data.bin');",
    "  process.chdir('/');",
    "  if (fail) throw new Error('after writing');",
    '  return { done: true };',
    '}',
  ].join('\n'),
};

afterEach(removeWorkdirs);

describe.each(LANGUAGES)('%s runner with emitFiles', (language) => {
  const code = language === 'python' ? WRITE_FILES.python : WRITE_FILES.node;
  const text = 'héllo ✓\nsecond line\n';

  /** Runs WRITE_FILES with a ~1 MiB hostile data.bin; returns the raw run and the expected contents. */
  async function runWriter(options: { emitFiles?: boolean; fail?: boolean }) {
    const nonce = randomUUID();
    const data = hostileBytes(nonce, MiB);
    const source = join(createWorkdir(), 'source.bin');
    writeFileSync(source, data);
    const args: JsonObject = { text, source, fail: options.fail ?? false };
    const request = { language, code, args, workdir: createWorkdir(), limits: DEFAULT_RUNNER_LIMITS, nonce, emitFiles: options.emitFiles };
    const run = await runRaw(language, request);
    const expected = new Map([
      ['notes/hello.txt', Buffer.from(text)],
      ['data.bin', data],
    ]);
    return { ...run, nonce, expected };
  }

  it.each([
    ['succeeds', false],
    ['fails after writing (the listed files are streamed too)', true],
  ])('streams every listed file after the response when main %s', async (_name, fail) => {
    const { stdout, stderr, exitCode, nonce, expected } = await runWriter({ emitFiles: true, fail });
    // The only stderr line: the runner saying it has its request (for a worker that adopts the sandbox).
    expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: `${requestReceivedMarker(nonce)}\n` });
    const response = parseRunnerOutputBuffer(stdout, nonce);
    expect(response).toMatchObject(fail ? { ok: false, error: { code: 'CODE_EXECUTION_FAILED' } } : { ok: true, output: { done: true } });
    expect(response?.files.map((file) => file.path).sort()).toEqual([...expected.keys()].sort());
    const frames = parseFileFrames(stdout, nonce);
    if (!frames.ok) throw new Error(frames.problem);
    expect(frames.files.map(({ path, size, sha256 }) => ({ path, size, sha256 }))).toEqual(response?.files);
    for (const file of frames.files) {
      const want = expected.get(file.path) as Buffer;
      expect(sha256(file.content)).toBe(sha256(want));
      expect(file.content.equals(want)).toBe(true);
    }
    expect(stdout.subarray(-(filesEndMarker(nonce).length + 1)).toString()).toBe(`${filesEndMarker(nonce)}\n`);
  });

  it('writes only the files-end marker when there are no files', async () => {
    const nonce = randomUUID();
    const main = language === 'python' ? 'def main(args):\n    return {}' : 'export function main() { return {} }';
    const run = await runRaw(language, { language, code: main, args: {}, workdir: createWorkdir(), limits: DEFAULT_RUNNER_LIMITS, nonce, emitFiles: true });
    const response = parseRunnerOutputBuffer(run.stdout, nonce);
    expect(response).toMatchObject({ ok: true, files: [] });
    expect(run.stdout.toString('utf8')).toBe(`${frameResponse(nonce, response as RunnerResponse)}${filesEndMarker(nonce)}\n`);
  });

  it('ends the stream of an INTERNAL response to a malformed request', async () => {
    const nonce = randomUUID();
    const run = await runRaw(language, { language, nonce, emitFiles: true, workdir: createWorkdir() });
    expect(parseRunnerOutputBuffer(run.stdout, nonce)).toMatchObject({ ok: false, error: { code: 'INTERNAL' }, files: [] });
    expect(parseFileFrames(run.stdout, nonce)).toEqual({ ok: true, files: [] });
  });

  it('leaves stdout exactly as before when emitFiles is not set', async () => {
    const { stdout, exitCode, nonce } = await runWriter({});
    expect(exitCode).toBe(0);
    const response = parseRunnerOutputBuffer(stdout, nonce);
    expect(response?.files).toHaveLength(2);
    expect(stdout.includes('<<<PODFLOW-FILE')).toBe(false);
    expect(stdout.toString('utf8')).toBe(frameResponse(nonce, response as RunnerResponse));
  });
});

describe('python runner with emitFiles: a large file', () => {
  it('round-trips a 20 MiB file', async () => {
    const nonce = randomUUID();
    const data = randomBytes(20 * MiB);
    const source = join(createWorkdir(), 'source.bin');
    writeFileSync(source, data);
    const code = 'import shutil\ndef main(args):\n    shutil.copyfile(args["source"], "big.bin")\n    return {}';
    const run = await runRaw('python', { language: 'python', code, args: { source }, workdir: createWorkdir(), limits: DEFAULT_RUNNER_LIMITS, nonce, emitFiles: true });
    expect(parseRunnerOutputBuffer(run.stdout, nonce)).toMatchObject({ ok: true, files: [{ path: 'big.bin', size: data.length, sha256: sha256(data) }] });
    const frames = parseFileFrames(run.stdout, nonce);
    expect(frames.ok && frames.files.length === 1 && frames.files[0].content.equals(data)).toBe(true);
  }, 30_000);
});
