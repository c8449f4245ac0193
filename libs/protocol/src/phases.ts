/** One vocabulary for phases, shared by the engine, the API, events and the CLI. */
export const RUN_PHASES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type RunPhase = (typeof RUN_PHASES)[number];

export const NODE_PHASES = ['pending', 'queued', 'running', 'succeeded', 'failed', 'skipped', 'canceled'] as const;
export type NodePhase = (typeof NODE_PHASES)[number];

export const TERMINAL_RUN_PHASES: readonly RunPhase[] = ['succeeded', 'failed', 'canceled'];
export const TERMINAL_NODE_PHASES: readonly NodePhase[] = ['succeeded', 'failed', 'skipped', 'canceled'];

export function isTerminalRunPhase(phase: RunPhase): boolean {
  return TERMINAL_RUN_PHASES.includes(phase);
}

export function isTerminalNodePhase(phase: NodePhase): boolean {
  return TERMINAL_NODE_PHASES.includes(phase);
}
