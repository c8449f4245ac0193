import type { NodeError } from './errors';
import type { JsonObject } from './json';
import type { PayloadRef } from './payloads';

export const LANGUAGES = ['python', 'typescript', 'javascript'] as const;
export type Language = (typeof LANGUAGES)[number];

export interface Resources {
  /** Kubernetes quantity, e.g. `500m`. */
  cpu?: string;
  /** Kubernetes quantity, e.g. `256Mi`. */
  memory?: string;
}

/** A file the node wrote under `/home/user`, as the node result shows it (DESIGN.md). */
export interface FileElement {
  name: string;
  /** Path relative to `/home/user`. */
  path: string;
  size: number;
  content_type: string;
  sha256: string;
  download_url: string;
  /** ISO-8601 time the URL stops working. */
  expires_at: string;
  /** Storage key; lets `files/sign` re-sign without trusting the client. */
  key: string;
}

export interface NodeFiles {
  elements: FileElement[];
}

export interface CapturedLogs {
  /** Tail of what the code printed to stdout. */
  stdout: string;
  /** Tail of what the code printed to stderr. */
  stderr: string;
  /** True when either stream was longer than the cap and only its tail is kept. */
  truncated: boolean;
}

/** Payload of one job on the `exec` queue: everything a worker needs to run one execution. */
export interface ExecJob {
  /** `<runId>.<nodeId>.<attempt>`; also the BullMQ job id, which makes enqueueing idempotent. */
  executionId: string;
  tenantId: string;
  runId: string;
  nodeId: string;
  attempt: number;
  language: Language;
  code: string;
  /** The node's `args`; absent when they were too large to travel inline and `argsRef` holds them. */
  args?: JsonObject;
  /** Where the args are stored when they are larger than the coordinator's `OUTPUT_INLINE_MAX_BYTES`. */
  argsRef?: PayloadRef;
  timeoutMs: number;
  dependencies: string[];
  resources?: Resources;
  network: boolean;
  /** main may return any JSON value; the runner reports it as the output `{ value }` (agent tools). */
  returnAny?: boolean;
  /** Epoch ms the coordinator enqueued it (for queue-wait timings). */
  enqueuedAt: number;
}

export interface ExecTimings {
  enqueuedAt: number;
  startedAt: number;
  finishedAt: number;
  queueWaitMs: number;
  /** Time inside the sandbox, start to result. */
  executionMs: number;
}

/** What a worker reports for one finished execution. */
export interface ExecResult {
  executionId: string;
  tenantId: string;
  runId: string;
  nodeId: string;
  attempt: number;
  status: 'succeeded' | 'failed';
  /** The output, when it was small enough to travel inline. */
  output?: JsonObject;
  /** Where the output is stored instead, when it was larger than the worker's `OUTPUT_INLINE_MAX_BYTES`. */
  outputRef?: PayloadRef;
  files?: NodeFiles;
  error?: NodeError;
  logs: CapturedLogs;
  warnings: string[];
  timings: ExecTimings;
  /** Peak memory of the execution's sandbox, where the driver measures it (the process driver's memory cgroup). */
  peakMemoryBytes?: number;
  workerId: string;
}

export function executionIdOf(runId: string, nodeId: string, attempt: number): string {
  return `${runId}.${nodeId}.${attempt}`;
}
