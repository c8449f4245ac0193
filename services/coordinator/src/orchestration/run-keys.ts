/**
 * Redis keys of the coordinator. Each carries a Redis Cluster hash tag of its own subject, so
 * the keys of one run share a slot (its Lua scripts touch several at once) while different runs,
 * tenants and definitions spread over the cluster: `podflow:{r:<run>}:nodes`,
 * `podflow:{t:<tenant>}:runs`, `podflow:{d:<hash>}:definition`. The prefix has no braces
 * (keyPrefixProblem in @podflow/protocol).
 */
/** The field of a run's nodes hash its creation writes (no node id can start with ':'). */
export const NODES_CREATED_FIELD = ':created';

export class RunKeys {
  constructor(readonly prefix: string) {}

  private runKey(runId: string, part: string): string {
    return `${this.prefix}:{r:${runId}}:${part}`;
  }
  /** Hash: `rec` (the RunRecord JSON) and `inputs`. */
  run(runId: string): string {
    return this.runKey(runId, 'run');
  }
  /**
   * Hash: node id → NodeRecord JSON (without logs, without an output kept by reference), for the
   * nodes something has touched (a node without one is pending: engine `pendingRecord`), and
   * NODES_CREATED_FIELD, written with the run, which tells an untouched node from lost records.
   */
  nodes(runId: string): string {
    return this.runKey(runId, 'nodes');
  }
  /** Hash: node id → the last attempt's captured logs (never read by a transition). */
  logs(runId: string): string {
    return this.runKey(runId, 'logs');
  }
  /** Hash: edge index → `f` (fired) or `n` (not fired); absent means pending. */
  edges(runId: string): string {
    return this.runKey(runId, 'edges');
  }
  events(runId: string): string {
    return this.runKey(runId, 'events');
  }
  /** Stream of commands to carry out; each entry is acknowledged (deleted) by its own id. */
  outbox(runId: string): string {
    return this.runKey(runId, 'outbox');
  }
  /** Stream of events waiting to be applied, in arrival order. */
  inbox(runId: string): string {
    return this.runKey(runId, 'inbox');
  }
  /** The token of the coordinator applying this run's events (the only writer of its records). */
  lease(runId: string): string {
    return this.runKey(runId, 'lease');
  }
  /** List: the run's webhook delivery attempts (webhooks/webhook-deliveries.ts), newest last. */
  webhookLog(runId: string): string {
    return this.runKey(runId, 'webhook-log');
  }
  /** An immutable definition by content hash. */
  definition(hash: string): string {
    return `${this.prefix}:{d:${hash}}:definition`;
  }
  /** Runs an owner is working on, scored by when it started: what the sweeper looks at after a crash. */
  activeRuns(): string {
    return `${this.prefix}:{o}:active-runs`;
  }
  /**
   * Before per-tenant held lists: runs whose ready executions waited for admission. Still read by
   * the sweeper, so runs held by an older coordinator are not forgotten after an upgrade.
   */
  legacyHeldRuns(): string {
    return `${this.prefix}:{o}:held-runs`;
  }
  /** Tenants that have (or recently had) held runs, scored by when they first did. */
  heldTenants(): string {
    return `${this.prefix}:{o}:held-tenants`;
  }
  /** A tenant's runs whose ready executions wait for admission, scored by when they first waited (FIFO). */
  heldRuns(tenantId: string): string {
    return `${this.prefix}:{t:${tenantId}}:held-runs`;
  }
  /** A tenant's runs not finished yet, scored by creation: what TENANT_MAX_RUNS_IN_PROGRESS counts. */
  runsInProgress(tenantId: string): string {
    return `${this.prefix}:{t:${tenantId}}:runs-in-progress`;
  }
  tenantRuns(tenantId: string): string {
    return `${this.prefix}:{t:${tenantId}}:runs`;
  }
  idempotency(tenantId: string, key: string): string {
    return `${this.prefix}:{t:${tenantId}}:idem:${key}`;
  }
  /** Hash: workflow id → `<finishedAt>:<runId>` of the tenant's latest succeeded run of it (test runs read their upstream from it). */
  lastSucceeded(tenantId: string): string {
    return `${this.prefix}:{t:${tenantId}}:last-succeeded`;
  }
  workflow(tenantId: string, workflowId: string): string {
    return `${this.prefix}:{t:${tenantId}}:workflow:${workflowId}`;
  }
}
