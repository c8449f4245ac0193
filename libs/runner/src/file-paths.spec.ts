import { execFileSync } from 'node:child_process';
import { dirname } from 'node:path';
import { FILE_PATH_EXAMPLES, unstorableFilesError, unstorablePathReason } from '@podflow/protocol';
import { runnerAssets } from './assets';
import { PYTHON } from './testing/run-runner';

// The Python runner keeps its own copy of the storable-path rule (it is stdlib-only and cannot
// import the protocol). Both copies answer the protocol's reference table identically, reason for
// reason, and build the same OUTPUT_INVALID message, so a name refused in one language is refused
// in the other with the same words.

/** Calls a function of podflow_runner.py on each argument; JSON both ways (lone surrogates included). */
function python(expression: string, inputs: unknown[]): unknown[] {
  const script = [
    'import json, sys',
    `sys.path.insert(0, ${JSON.stringify(dirname(runnerAssets().python))})`,
    'import podflow_runner as r',
    'inputs = json.loads(sys.stdin.read())',
    `print(json.dumps([${expression} for x in inputs]))`,
  ].join('\n');
  return JSON.parse(execFileSync(PYTHON, ['-I', '-B', '-c', script], { input: JSON.stringify(inputs), encoding: 'utf8' })) as unknown[];
}

describe('storable file paths: the runners agree', () => {
  it('the Python runner gives the protocol reason for every reference example', () => {
    const paths = FILE_PATH_EXAMPLES.map((example) => example.path);
    const reasons = python('r.unstorable_path_reason(x)', paths);
    expect(reasons).toEqual(FILE_PATH_EXAMPLES.map((example) => example.reason ?? null));
    // And the protocol function itself (which the Node runner, the host check and the worker call).
    expect(paths.map((path) => unstorablePathReason(path) ?? null)).toEqual(reasons);
  });

  it('the Python runner builds the same OUTPUT_INVALID error as the protocol', () => {
    const problems = FILE_PATH_EXAMPLES.filter((example) => example.reason !== undefined).map((example) => ({ path: example.path, reason: example.reason! }));
    const [fromPython] = python('(lambda e: {"code": e.code, "message": e.message, "details": e.details})(r.unstorable_files_error([(p["path"], p["reason"]) for p in x]))', [
      problems,
    ]);
    expect(fromPython).toEqual(unstorableFilesError(problems));
    expect(unstorableFilesError(problems).message).toMatch(/^17 file\(s\) written under \/home\/user cannot be stored: "" \(the path is empty\), .*, and 12 more\. Rename them/);
  });
});
