import type { NodeError } from './errors';
import type { NodePhase, RunPhase } from './phases';

/** One transition on a run's event stream (SSE at `GET /v1/runs/:id/events`, CLI `--watch`). */
export type RunEventMessage =
  | { type: 'run'; runId: string; status: RunPhase; error?: NodeError; at: number }
  | { type: 'node'; runId: string; nodeId: string; status: NodePhase; attempt: number; error?: NodeError; at: number };
