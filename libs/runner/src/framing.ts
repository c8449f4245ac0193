import { responseEndMarker, responseStartMarker, type RunnerResponse } from '@podflow/protocol';

/**
 * Frames one response for stdout: `\n<start>\n<json>\n<end>\n`. The leading newline makes the
 * start marker begin a line even when the user's code left a partial line on file descriptor 1.
 */
export function frameResponse(nonce: string, response: RunnerResponse): string {
  return `\n${responseStartMarker(nonce)}\n${JSON.stringify(response)}\n${responseEndMarker(nonce)}\n`;
}

/**
 * Finds the LAST framed response for `nonce` in a runner's stdout. Anything around it (direct writes
 * to fd 1, child processes, a forged block printed earlier) is ignored. Returns undefined when there
 * is no complete block or its JSON does not look like a RunnerResponse: the driver then reports
 * the sandbox as lost rather than trusting half a result.
 */
export function parseRunnerOutput(stdout: string, nonce: string): RunnerResponse | undefined {
  const start = `${responseStartMarker(nonce)}\n`;
  const end = `\n${responseEndMarker(nonce)}`;
  const startAt = stdout.lastIndexOf(start);
  if (startAt < 0 || (startAt > 0 && stdout[startAt - 1] !== '\n')) return undefined;
  const bodyAt = startAt + start.length;
  const endAt = stdout.indexOf(end, bodyAt);
  if (endAt < 0) return undefined;
  const after = stdout.charAt(endAt + end.length);
  if (after !== '' && after !== '\n' && after !== '\r') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout.slice(bodyAt, endAt));
  } catch {
    return undefined;
  }
  return looksLikeResponse(parsed) ? parsed : undefined;
}

function looksLikeResponse(value: unknown): value is RunnerResponse {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  const logs = v.logs as Record<string, unknown> | null | undefined;
  const shapeOk =
    Array.isArray(v.files) &&
    typeof v.durationMs === 'number' &&
    typeof logs === 'object' &&
    logs !== null &&
    typeof logs.stdout === 'string' &&
    typeof logs.stderr === 'string';
  if (!shapeOk) return false;
  if (v.ok === true) return typeof v.output === 'object' && v.output !== null && !Array.isArray(v.output);
  if (v.ok === false) {
    const error = v.error as Record<string, unknown> | null | undefined;
    return typeof error === 'object' && error !== null && typeof error.code === 'string' && typeof error.message === 'string';
  }
  return false;
}
