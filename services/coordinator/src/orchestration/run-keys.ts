/**
 * Redis keys of the coordinator. Every key starts with the configured prefix, whose default
 * `{podflow}` is a Redis Cluster hash tag: multi-key scripts stay in one slot.
 */
export class RunKeys {
  constructor(readonly prefix: string) {}

  run(runId: string): string {
    return `${this.prefix}:run:${runId}`;
  }
  events(runId: string): string {
    return `${this.prefix}:run:${runId}:events`;
  }
  outbox(runId: string): string {
    return `${this.prefix}:run:${runId}:outbox`;
  }
  /** The wake stream of one coordinator's run event reader (streams/run-event-hub.ts); expires with it. */
  eventsWake(readerId: string): string {
    return `${this.prefix}:events-wake:${readerId}`;
  }
  /** Runs with commands not yet carried out, scored by when they were written. */
  pendingOutboxes(): string {
    return `${this.prefix}:outbox-pending`;
  }
  tenantRuns(tenantId: string): string {
    return `${this.prefix}:tenant:${tenantId}:runs`;
  }
  idempotency(tenantId: string, key: string): string {
    return `${this.prefix}:tenant:${tenantId}:idem:${key}`;
  }
  workflow(tenantId: string, workflowId: string): string {
    return `${this.prefix}:tenant:${tenantId}:workflow:${workflowId}`;
  }
}
