// Runs through the coordinator's HTTP API, for the benchmarks that time whole runs (fanout.mjs,
// orchestration.mjs). A run's time is the time the coordinator recorded it: the Redis stream ids
// (server clock, ms) of its `running` and terminal run events, read from the `id:` lines of its
// server-sent event stream, so no benchmark depends on how the coordinator lays out its keys.
import { API_KEY } from './lib.mjs';

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

/** A 4xx answer to a submission, carrying the coordinator's own message. */
export class Refused extends Error {}
/** A run that did not reach its terminal event before the deadline. */
export class TimedOut extends Error {}

/** fetch() against the stack's coordinator with the bench API key. */
export async function api(stack, method, path, body, signal) {
  return fetch(`${stack.url}${path}`, {
    method,
    signal,
    headers: { authorization: `Bearer ${API_KEY}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
}

/** POST /v1/runs; returns the run id. A 4xx answer is a Refused carrying the coordinator's message. */
export async function submit(stack, workflow) {
  const response = await api(stack, 'POST', '/v1/runs', { workflow, inputs: {} });
  const text = await response.text();
  if (response.ok) return JSON.parse(text).id;
  let message = `HTTP ${response.status}: ${text.slice(0, 300)}`;
  try {
    const { error } = JSON.parse(text);
    message = `${error.code}: ${error.message}`;
  } catch {
    // Not podflow's JSON error: keep the status and the start of the body.
  }
  if (response.status >= 400 && response.status < 500) throw new Refused(message);
  throw new Error(`POST /v1/runs: ${message}`);
}

/** The milliseconds part of a Redis stream id (`<ms>-<seq>`). */
export const streamMs = (id) => Number(String(id).split('-')[0]);

/**
 * Follows the run's event stream to its terminal run event; returns the stream ids of the `running`
 * and terminal run events, and with `keepNodeEvents` every node event as `{ id, nodeId, status }`.
 * Past `deadline` (epoch ms) a TimedOut saying how many nodes finished.
 */
export async function followRun(stack, runId, deadline, { keepNodeEvents = false } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), Math.max(0, deadline - Date.now()));
  let running;
  let finishedNodes = 0;
  const nodeEvents = [];
  try {
    const response = await api(stack, 'GET', `/v1/runs/${runId}/events`, undefined, controller.signal);
    if (!response.ok) throw new Error(`GET /v1/runs/${runId}/events: HTTP ${response.status} ${await response.text()}`);
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(frame.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]));
        if (!fields.data) continue;
        if (fields.event !== 'run') {
          if (fields.data.includes('"status":"succeeded"') || fields.data.includes('"status":"failed"')) finishedNodes += 1;
          if (keepNodeEvents) {
            const { nodeId, status } = JSON.parse(fields.data);
            nodeEvents.push({ id: fields.id, nodeId, status });
          }
          continue;
        }
        const event = JSON.parse(fields.data);
        if (event.status === 'running' && !running) running = fields.id;
        if (TERMINAL.has(event.status)) {
          if (!running) throw new Error(`run ${runId}: terminal event ${fields.id} without a running event before it`);
          return { running, terminal: fields.id, status: event.status, finishedNodes, ...(keepNodeEvents ? { nodeEvents } : {}) };
        }
      }
    }
    throw new Error(`run ${runId}: event stream ended before the terminal run event`);
  } catch (error) {
    if (controller.signal.aborted) throw new TimedOut(`${finishedNodes} node(s) finished`);
    throw error;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

/**
 * GET /v1/runs/:id and every further page of its nodes (the API pages them, at most 1,000 a page:
 * `nextNodeCursor` while more follow, `nodesTotal` in all). Returns the last page's run view, every
 * node view, and `nodesTotal` (undefined from a coordinator that does not page).
 */
export async function readRun(stack, runId) {
  const nodes = [];
  let run;
  let cursor;
  let pages = 0;
  do {
    const query = cursor === undefined ? '' : `?nodeCursor=${encodeURIComponent(cursor)}`;
    const response = await api(stack, 'GET', `/v1/runs/${runId}${query}`);
    if (!response.ok) throw new Error(`GET /v1/runs/${runId}${query}: HTTP ${response.status} ${(await response.text()).slice(0, 300)}`);
    run = await response.json();
    nodes.push(...Object.values(run.nodes ?? {}));
    cursor = run.nextNodeCursor;
    pages += 1;
    // A cursor that never runs out would loop forever; 10,000 pages is far past any node limit.
    if (pages > 10_000) throw new Error(`GET /v1/runs/${runId}: still paging after ${pages} pages (nextNodeCursor ${cursor})`);
  } while (cursor !== undefined);
  return { run, nodes, nodesTotal: run.nodesTotal };
}

/**
 * Checks a finished run's view: succeeded, `expected` nodes (in `nodesTotal` and in the pages read),
 * every one succeeded. Throws naming what differs.
 */
export function checkAllSucceeded(runId, { run, nodes, nodesTotal }, expected) {
  const notDone = nodes.filter((n) => n.status !== 'succeeded').length;
  const totalOk = nodesTotal === undefined || nodesTotal === expected;
  if (run.status !== 'succeeded' || nodes.length !== expected || !totalOk || notDone > 0) {
    throw new Error(
      `run ${runId} ended ${run.status} with ${nodes.length}/${expected} nodes read (nodesTotal ${nodesTotal ?? 'absent'}), ${notDone} not succeeded: ${JSON.stringify(run.error ?? null).slice(0, 500)}`,
    );
  }
}
