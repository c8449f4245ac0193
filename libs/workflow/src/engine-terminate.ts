import { boundNodeError, executionIdOf, isTerminalRunPhase, type NodeError } from '@podflow/protocol';
import { emitNode, emitRun, isActive, loadNodes, peekNode, runRecord, setNodeStatus, type Step } from './engine-context';
import { formatDuration } from './durations';
import { mostAttempts } from './attempts';
import type { RunEnding } from './types';

/**
 * Ends the run: every queued or running node is canceled (with a `cancel_execution` so its
 * sandbox is killed), every pending node is canceled, then the run takes `status` and `error`.
 * Nodes already finished keep their result. Reads every node once: all at once, or with
 * `step.edgePage` a page of nodes per step (`RunRecord.ending`, an `end_run` command for the next
 * page), so ending a 10,000-node run is no single 10,000-record write either. A run already
 * ending keeps the end it has.
 */
export async function terminateRun(step: Step, status: 'failed' | 'canceled', runError: NodeError, canceledNodeError: NodeError): Promise<void> {
  if (step.run.ending) return;
  // Messages can quote user text (an expression, a cancel reason): bounded like node errors.
  await endRunFrom(step, { status, error: boundNodeError(runError), nodeError: boundNodeError(canceledNodeError), next: 0 });
}

/**
 * `end_run` event: the next page of an ending run's nodes. Only the one the last page asked for
 * (`from` is the cursor it wrote): a late or repeated one changes nothing.
 */
export async function endRunPage(step: Step, from: number): Promise<void> {
  const { ending } = step.run;
  if (ending && ending.next === from && !isTerminalRunPhase(step.run.status)) await endRunFrom(step, ending);
}

/** Where the page of an end that starts at `next` stops. */
function pageEnd(step: Step, next: number): number {
  const { length } = step.compiled.nodeIds;
  return Math.min(length, next + (step.edgePage ?? length));
}

/** Cancels the nodes of one page from `ending.next` on; after the last page the run takes its terminal status. */
async function endRunFrom(step: Step, ending: RunEnding): Promise<void> {
  const ids = step.compiled.nodeIds;
  const to = pageEnd(step, ending.next);
  const page = ids.slice(ending.next, to);
  await loadNodes(step, page);
  for (const id of page) {
    const current = peekNode(step, id);
    if (isActive(current.status) && current.executionId) {
      step.commands.push({ type: 'cancel_execution', nodeId: id, executionId: current.executionId });
    } else if (current.status !== 'pending') {
      continue;
    }
    const node = setNodeStatus(step, id, 'canceled');
    node.error = { ...ending.nodeError, nodeId: id };
    node.timings.finishedAt = step.at;
    emitNode(step, id, node.error);
  }
  // Nodes left to look at, and some of them still open (a run's last open node failing ends it at once).
  if (to < ids.length && step.run.open > 0) continueEnd(step, ending, to);
  else finishEnd(step, ending);
}

/** The end goes on at `next` in the next step (`end_run`). */
function continueEnd(step: Step, ending: RunEnding, next: number): void {
  runRecord(step).ending = { ...ending, next };
  step.commands.push({ type: 'end_run', from: next, at: step.at });
}

/**
 * Skips the page of the end at `ending.next` without reading it (its records cannot be read): its
 * nodes keep the records they have, and every execution they may have (each attempt a node can
 * make; execution ids are deterministic) gets a `cancel_execution`, so none goes on running for
 * a run that has ended. The end goes on with the next page, or the run takes its terminal status.
 */
function skipEndPage(step: Step, ending: RunEnding): void {
  const ids = step.compiled.nodeIds;
  const to = pageEnd(step, ending.next);
  for (const id of ids.slice(ending.next, to)) {
    const attempts = mostAttempts(step.compiled.nodesById.get(id)!);
    for (let attempt = 1; attempt <= attempts; attempt++) step.commands.push({ type: 'cancel_execution', nodeId: id, executionId: executionIdOf(step.run.id, id, attempt) });
  }
  if (to < ids.length) continueEnd(step, ending, to);
  else finishEnd(step, ending);
}

/**
 * Asks for the ending run's next page again: a backstop for an `end_run` that was lost (the
 * service dropped it with an event before it that it could not apply). A repeat changes nothing:
 * only the `end_run` at the cursor applies.
 */
function resumeEnd(step: Step, ending: RunEnding): void {
  step.commands.push({ type: 'end_run', from: ending.next, at: step.at });
}

/** The run takes the status and error it ends with, and its terminal event (after every node's). */
function finishEnd(step: Step, ending: RunEnding): void {
  const run = runRecord(step);
  delete run.ending;
  // Roots or edges not readied yet stay so: the run is over.
  delete run.rootsStarted;
  run.status = ending.status;
  run.error = ending.error;
  run.finishedAt = step.at;
  emitRun(step);
}

/** Fail fast: a node failed and no failure/always edge took the failure, so the run fails with its error. */
export async function failRunWithNodeError(step: Step, error: NodeError): Promise<void> {
  const runError: NodeError = {
    code: error.code,
    message: error.message,
    ...(error.nodeId !== undefined ? { nodeId: error.nodeId } : {}),
    ...(error.type !== undefined ? { type: error.type } : {}),
    ...(error.stack !== undefined ? { stack: error.stack } : {}),
  };
  const because = error.nodeId ? `node "${error.nodeId}" failed with ${error.code}` : `the run failed with ${error.code}`;
  await terminateRun(step, 'failed', runError, { code: 'CANCELED', message: `canceled because ${because}` });
}

/** `cancel` event: a no-op on a finished run. */
export async function cancelRun(step: Step, reason?: string): Promise<void> {
  const { status } = step.run;
  if (status === 'succeeded' || status === 'failed' || status === 'canceled') return;
  const message = reason ?? 'run canceled';
  await terminateRun(step, 'canceled', { code: 'CANCELED', message }, { code: 'CANCELED', message: `canceled: ${message}` });
}

/**
 * `run_timeout` event: only a running run can time out; a late timer on a finished run is stale.
 * An ending run has ended already; its timer asks for the end's next page again (`resumeEnd`).
 */
export async function timeoutRun(step: Step): Promise<void> {
  if (step.run.ending) return resumeEnd(step, step.run.ending);
  if (step.run.status !== 'running') return;
  const { timeoutMs } = step.compiled.workflow;
  const seconds = Math.round(timeoutMs / 1_000);
  await terminateRun(
    step,
    'failed',
    { code: 'RUN_TIMEOUT', message: `run exceeded its timeout of ${seconds}s; pending nodes were canceled` },
    { code: 'RUN_TIMEOUT', message: `canceled because the run exceeded its timeout of ${formatDuration(timeoutMs)}` },
  );
}

/**
 * `fail` event: the service could not apply an event to a live run; it fails now rather than at
 * its timeout. An ending run has ended for every other event, so it does not fail again; but the
 * service drops the events after the one it could not apply, the end's next `end_run` perhaps, so
 * that is asked for again (`resumeEnd`). `endPage`: the page of the end starting there cannot be
 * read (the `end_run` of an ending run at its cursor, or 0: the first page of the end this `fail`
 * starts); it is skipped (`skipEndPage`) and the end goes on with the next one, rather than never.
 */
export async function failUnapplicable(step: Step, error: NodeError, endPage?: number): Promise<void> {
  const { ending } = step.run;
  if (ending) {
    if (endPage === ending.next) skipEndPage(step, ending);
    else resumeEnd(step, ending);
    return;
  }
  if (step.run.status !== 'running' && step.run.status !== 'queued') return;
  const canceled: NodeError = { code: 'CANCELED', message: `canceled because the run failed with ${error.code}` };
  if (endPage === 0) skipEndPage(step, { status: 'failed', error: boundNodeError(error), nodeError: canceled, next: 0 });
  else await terminateRun(step, 'failed', error, canceled);
}

