/**
 * @podflow/runner: the in-sandbox runner programs (one per language) and the helpers a sandbox
 * driver needs to start them and read their answer.
 *
 * ```ts
 * import { parseRunnerOutput, runnerArgv, runnerAssets } from '@podflow/runner';
 *
 * const argv = runnerArgv('python', runnerAssets(), { python: '/usr/bin/python3', node: process.execPath });
 * // spawn argv with the RunnerRequest JSON on stdin, collect stdout, then:
 * const response = parseRunnerOutput(stdout, request.nonce); // undefined: no (valid) response
 * // with `emitFiles: true`, keep stdout as a Buffer:
 * const files = parseFileFrames(stdoutBytes, request.nonce); // and parseRunnerOutputBuffer for the response
 * ```
 */
export { runnerArgv, runnerAssets } from './assets';
export type { RunnerAssets, RunnerInterpreters } from './assets';
export { countContainers, frameFileHeader, frameResponse, parseFileFrames, parseRunnerOutput, parseRunnerOutputBuffer, readRunnerResponse, responseBounds, type BoundedResponse, type ResponseBounds } from './framing';
export type { EmittedFile, FileFramesResult } from './framing';
