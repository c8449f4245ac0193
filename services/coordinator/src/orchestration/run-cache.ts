import type { JsonObject } from '@podflow/protocol';
import type { NodeRecord } from '@podflow/workflow';
import { LRUCache } from 'lru-cache';

/**
 * What never changes about a run once written, kept in this coordinator's memory so the next
 * batch does not read it from Redis again: the run's inputs, and the records of nodes that
 * succeeded and resolved all their edges (such a record is final: nothing in the engine changes
 * it afterwards). A chain
 * step's `args` hold every succeeded ancestor; without this they would be read from Redis at
 * every step. Any coordinator may cache the same entries: immutable values are never stale, so
 * nothing needs invalidating, and an evicted entry is simply read again.
 *
 * Bounded by `maxBytes` of JSON (least recently used evicted first); 0 turns it off.
 */
export class RunCache {
  private readonly entries: LRUCache<string, JsonObject | NodeRecord> | undefined;

  constructor(maxBytes: number) {
    this.entries = maxBytes > 0 ? new LRUCache({ maxSize: maxBytes }) : undefined;
  }

  inputs(runId: string): JsonObject | undefined {
    return this.entries?.get(inputsKey(runId)) as JsonObject | undefined;
  }

  /** Remembers a run's inputs; `bytes` is the size of their JSON. */
  rememberInputs(runId: string, inputs: JsonObject, bytes: number): void {
    this.set(inputsKey(runId), inputs, bytes);
  }

  /** A succeeded node's record, or undefined when not cached. */
  node(runId: string, nodeId: string): NodeRecord | undefined {
    return this.entries?.get(nodeKey(runId, nodeId)) as NodeRecord | undefined;
  }

  /**
   * Remembers `record` when it is final (succeeded, with every outgoing edge resolved: a wide
   * fan-out's node changes its `edgesResolved` page after page, and a stale copy would resolve a
   * page twice), without its logs (nothing reads them from here, and the budget does not count
   * them). Callers get the kept object back and must not change it (the engine copies a record
   * before its first change).
   */
  rememberNode(runId: string, nodeId: string, record: NodeRecord): void {
    if (!this.entries || record.status !== 'succeeded' || record.edgesResolved !== undefined) return;
    const { logs: _logs, ...kept } = record;
    this.set(nodeKey(runId, nodeId), kept, approximateBytes(kept));
  }

  private set(key: string, value: JsonObject | NodeRecord, bytes: number): void {
    // An entry larger than the whole cache would be refused by the LRU; it is simply not kept.
    if (this.entries && bytes > 0 && bytes <= this.entries.maxSize) this.entries.set(key, value, { size: bytes });
  }
}

// The run id's length first: no pair of run and node ids can spell another pair's key.
const inputsKey = (runId: string) => `i:${runId}`;
const nodeKey = (runId: string, nodeId: string) => `n:${runId.length}:${runId}:${nodeId}`;

/**
 * A record's size for the cache's budget: its JSON without the output, plus the output's size
 * as stored (its reference's size when kept by reference; else measured once here).
 */
export function approximateBytes(node: NodeRecord): number {
  const { output, logs: _logs, ...rest } = node;
  const outputBytes = node.outputRef ? node.outputRef.size : output === undefined ? 0 : JSON.stringify(output).length;
  return JSON.stringify(rest).length + outputBytes;
}
