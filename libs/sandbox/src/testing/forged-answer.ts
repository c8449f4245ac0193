import { responseEndMarker, responseStartMarker } from '@podflow/protocol';

const PLACEHOLDER = '__NONCE__';

/**
 * Python code for a hostile node: its `main` finds the request's nonce in the runner's frames
 * (the runner shares its process with the code), runs the lines of `before` (which may change the
 * dict `answer`), writes `answer` framed as the runner would on the runner's own copy of stdout
 * (file descriptor 3), runs the lines of `after`, and ends the process before the runner can
 * answer. For tests of what the host accepts from an answer.
 */
export function forgedPythonAnswer(answer: unknown, { before = [], after = [] }: { before?: readonly string[]; after?: readonly string[] } = {}): string {
  return [
    'import json, os, sys',
    'def main(args):',
    '    frame = sys._getframe()',
    "    while frame is not None and not (isinstance(frame.f_locals.get('request'), dict) and 'nonce' in frame.f_locals['request']):",
    '        frame = frame.f_back',
    "    nonce = frame.f_locals['request']['nonce']",
    `    start = ${JSON.stringify(responseStartMarker(PLACEHOLDER))}.replace(${JSON.stringify(PLACEHOLDER)}, nonce)`,
    `    end = ${JSON.stringify(responseEndMarker(PLACEHOLDER))}.replace(${JSON.stringify(PLACEHOLDER)}, nonce)`,
    `    answer = json.loads(${JSON.stringify(JSON.stringify(answer))})`,
    ...before.map((line) => `    ${line}`),
    '    data = ("\\n" + start + "\\n" + json.dumps(answer) + "\\n" + end + "\\n").encode()',
    '    view = memoryview(data)',
    '    while view:',
    '        view = view[os.write(3, view):]',
    ...after.map((line) => `    ${line}`),
    '    os._exit(0)',
  ].join('\n');
}
