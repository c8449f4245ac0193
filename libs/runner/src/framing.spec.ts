import { existsSync } from 'node:fs';
import { DEFAULT_RUNNER_LIMITS, filesEndMarker, responseEndMarker, responseStartMarker, type RunnerResponse } from '@podflow/protocol';
import { runnerArgv, runnerAssets } from './assets';
import { countContainers, frameFileHeader, frameResponse, parseFileFrames, parseRunnerOutput, readRunnerResponse, responseBounds } from './framing';

const NONCE = 'nonce-1';
const logs = { stdout: '', stderr: '', truncated: false };
const okResponse = (value: number): RunnerResponse => ({ ok: true, output: { value }, files: [], logs, durationMs: 1 });

describe('parseRunnerOutput', () => {
  it('reads a framed response', () => {
    expect(parseRunnerOutput(frameResponse(NONCE, okResponse(1)), NONCE)).toEqual(okResponse(1));
  });

  it('takes the last block and ignores garbage around it', () => {
    const stdout = `noise${frameResponse(NONCE, okResponse(1))}more noise\npartial line${frameResponse(NONCE, okResponse(2))}trailing`;
    expect(parseRunnerOutput(stdout, NONCE)).toEqual(okResponse(2));
  });

  it.each([
    ['no block at all', 'just some output\n'],
    ['a block for another nonce', frameResponse('other', okResponse(1))],
    ['a missing end marker', `\n${responseStartMarker(NONCE)}\n${JSON.stringify(okResponse(1))}\n`],
    ['invalid JSON', `\n${responseStartMarker(NONCE)}\n{"ok": tru\n${responseEndMarker(NONCE)}\n`],
    ['JSON that is not a response', `\n${responseStartMarker(NONCE)}\n{"ok": true}\n${responseEndMarker(NONCE)}\n`],
    ['a start marker in the middle of a line', `x${responseStartMarker(NONCE)}\n${JSON.stringify(okResponse(1))}\n${responseEndMarker(NONCE)}\n`],
    ['a later block that is broken', `${frameResponse(NONCE, okResponse(1))}\n${responseStartMarker(NONCE)}\n{`],
  ])('returns undefined for %s', (_name, stdout) => {
    expect(parseRunnerOutput(stdout, NONCE)).toBeUndefined();
  });

  it('reads an error response', () => {
    const response: RunnerResponse = { ok: false, error: { code: 'OUTPUT_INVALID', message: 'bad' }, files: [], logs, durationMs: 2 };
    expect(parseRunnerOutput(frameResponse(NONCE, response), NONCE)).toEqual(response);
  });
});

describe('readRunnerResponse: an answer is held to its bounds before it is parsed (the code can write one)', () => {
  const MIB = 1024 * 1024;
  const bounds = responseBounds(DEFAULT_RUNNER_LIMITS);
  const withOutput = (output: Record<string, unknown>) => frameResponse(NONCE, { ok: true, output: output as never, files: [], logs, durationMs: 1 });
  let parse: jest.SpyInstance;
  beforeEach(() => {
    parse = jest.spyOn(JSON, 'parse');
  });
  afterEach(() => parse.mockRestore());

  it('derives the bounds from the limits: the output, both logs escaped, the file list, a margin; an eighth of the output in containers', () => {
    expect(bounds).toEqual({ maxBytes: 8 * MIB + 12 * 64 * 1024 + 100 * 32 * 1024 + MIB, maxContainers: 524_288 + 100 + 64 });
  });

  it('reads an answer within them, text or bytes (with file frames after it)', () => {
    const records = Array.from({ length: 200_000 }, (_, id) => ({ id, name: 'abcdefgh' }));
    expect(readRunnerResponse(withOutput({ records }), NONCE, bounds)).toEqual({ response: expect.objectContaining({ ok: true, output: { records } }) });
    const bytes = Buffer.from(frameResponse(NONCE, okResponse(7)) + frameFileHeader(NONCE, { path: 'a.txt', size: 1, sha256: '0'.repeat(64) }) + 'x\n');
    expect(readRunnerResponse(bytes, NONCE, bounds)).toEqual({ response: okResponse(7) });
    expect(readRunnerResponse('no answer here', NONCE, bounds)).toBeUndefined();
  });

  it('refuses, unparsed, an answer longer than any runner writes (117 MiB of one fitted the Kubernetes stdout cap)', () => {
    parse.mockClear();
    const bytesOf = (output: unknown) => Buffer.byteLength(JSON.stringify({ ok: true, output, files: [], logs, durationMs: 1 }));
    const long = { text: 'x'.repeat(bounds.maxBytes) };
    expect(readRunnerResponse(withOutput(long), NONCE, bounds)).toEqual({
      refused: `the answer is ${bytesOf(long)} bytes of JSON, more than the ${bounds.maxBytes} a runner writes at most (the output limit, both logs, the file list)`,
    });
    // Counted in bytes: 5 Mi of a three-byte character are 15 MiB of UTF-8 (and fewer characters than the bound).
    const wide = { text: '中'.repeat(5 * MIB) };
    expect(bytesOf(wide)).toBeGreaterThan(bounds.maxBytes);
    expect(readRunnerResponse(withOutput(wide), NONCE, bounds)).toEqual({ refused: expect.stringContaining(`the answer is ${bytesOf(wide)} bytes of JSON`) });
    expect(parse).not.toHaveBeenCalled();
  });

  it('refuses, unparsed, an answer of more objects and arrays than an output can need ([{},{},...]: 72 s and 2.6 GB of heap parsed)', () => {
    parse.mockClear();
    const stdout = `\n${responseStartMarker(NONCE)}\n{"ok":true,"files":[],"durationMs":1,"logs":{"stdout":"","stderr":""},"output":{"x":[${'{},'.repeat(bounds.maxContainers)}{}]}}\n${responseEndMarker(NONCE)}\n`;
    expect(readRunnerResponse(stdout, NONCE, bounds)).toEqual({ refused: `the answer holds more than ${bounds.maxContainers} objects and arrays (the output limit / 16)` });
    expect(parse).not.toHaveBeenCalled();
    // One fewer is read.
    const fewer = `\n${responseStartMarker(NONCE)}\n{"ok":true,"files":[],"durationMs":1,"logs":{"stdout":"","stderr":""},"output":{"x":[${'{},'.repeat(bounds.maxContainers - 6)}{}]}}\n${responseEndMarker(NONCE)}\n`;
    expect(readRunnerResponse(fewer, NONCE, bounds)).toEqual({ response: expect.objectContaining({ ok: true }) });
  });

  it.each([
    ['{"a":[1,{"b":[]}]}', 4],
    ['{"a":"[{[{"}', 1],
    ['["\\"", "{", "\\\\", {}]', 2],
    ['"[[["', 0],
  ])('counts the objects and arrays outside strings: %s', (text, count) => {
    expect(countContainers(text, 100)).toBe(count);
  });
});

describe('parseFileFrames with a bound', () => {
  const EMPTY_SHA = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
  const framed = (frames: number) =>
    Buffer.from(frameResponse(NONCE, okResponse(1)) + frameFileHeader(NONCE, { path: 'a', size: 0, sha256: EMPTY_SHA }).concat('\n').repeat(frames) + `${filesEndMarker(NONCE)}\n`);

  it('reads as many frames as allowed, and stops at the first one past the bound without reading the rest (a forged million took 5 s and 0.5 GB)', () => {
    expect(parseFileFrames(framed(3), NONCE, 3)).toMatchObject({ ok: true, files: [{ path: 'a' }, { path: 'a' }, { path: 'a' }] });
    const started = Date.now();
    expect(parseFileFrames(framed(1_000_000), NONCE, 3)).toEqual({ ok: false, problem: 'more file frames follow than the 3 the answer lists', tooMany: true });
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe('runnerArgv / runnerAssets', () => {
  const assets = runnerAssets();

  it('points at the shipped runner programs', () => {
    expect(assets.python).toMatch(/libs\/runner\/python\/podflow_runner\.py$/);
    expect(assets.node).toMatch(/libs\/runner\/dist\/node-runner\.js$/);
    expect(existsSync(assets.python)).toBe(true);
    expect(existsSync(assets.node)).toBe(true); // built by jest.global-setup.js
  });

  it('builds the command line per language', () => {
    const interpreters = { python: '/usr/bin/python3', node: '/usr/bin/node' };
    expect(runnerArgv('python', assets, interpreters)).toEqual(['/usr/bin/python3', '-I', '-u', assets.python]);
    expect(runnerArgv('typescript', assets, interpreters)).toEqual(['/usr/bin/node', assets.node]);
    expect(runnerArgv('javascript', assets, interpreters)).toEqual(['/usr/bin/node', assets.node]);
  });
});
