import type { CodeNode } from './types';

/** Retries SANDBOX_* failures get even when the node asked for none: they are the platform's fault. */
export const PLATFORM_RETRIES = 2;

/** The most attempts a node can make, whatever its failures (attempt numbers, and so execution ids, are known in advance). */
export function mostAttempts(node: CodeNode): number {
  return 1 + Math.max(node.retries.max, PLATFORM_RETRIES);
}
