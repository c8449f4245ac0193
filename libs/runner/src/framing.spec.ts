import { existsSync } from 'node:fs';
import { responseEndMarker, responseStartMarker, type RunnerResponse } from '@podflow/protocol';
import { runnerArgv, runnerAssets } from './assets';
import { frameResponse, parseRunnerOutput } from './framing';

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
