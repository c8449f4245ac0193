import { LuaScript, type RedisClient } from '@podflow/redis';
import type { Queue } from 'bullmq';
import type { TenantDispatch } from '../tenancy/dispatch-policy';

/**
 * Admits one batch of a tenant's ready executions onto `exec`, atomically with every other
 * coordinator (all keys share the exec queue's hash slot). KEYS: wait, active, delayed,
 * prioritized, waiting-children (BullMQ's, of `exec`), the tenant's in-flight set, the dispatch
 * hash, the set of tenants with executions in flight. ARGV: tenant, weight, tenant cap, global
 * cap, now, settle ms, executionId... Returns {admitted, start, shift}.
 *
 * - Caps: the tenant's in-flight set (execution ids, scored by admission time) and the size of
 *   `exec` are counted here, so a cap holds across coordinators.
 * - Order (start-time fair queuing): each tenant has a virtual finish tag. A batch starts at
 *   max(virtual time, the tenant's tag) and takes 1/weight level per execution; BullMQ serves the
 *   lowest priority (level) first. The virtual time is the level at the head of `exec`'s
 *   prioritized set: a tenant that arrives now starts level with the others, not behind
 *   everything queued before it, and a tenant with a deep backlog only lengthens its own line.
 *   When nothing waits there, it is the last head seen, unless no batch was admitted for `settle`
 *   ms: then everything admitted has been served and it is the highest tag handed out. (A batch
 *   is admitted here and added by the caller a moment later: an empty set right after an
 *   admission does not mean that batch was served.) Levels are absolute; `shift` maps them into
 *   BullMQ's range (1..2^21-1) and moves when they grow past half of it.
 */
const ADMIT = new LuaScript(`
local n = #ARGV - 6
local tenant, weight, tenantCap, globalCap, now, settle = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local inFlight = redis.call('ZCARD', KEYS[6])
local total = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]) + redis.call('ZCARD', KEYS[5])
local admitted = math.min(n, tenantCap - inFlight, globalCap - total)
if admitted <= 0 then return {0, '0', '0'} end
local shift = tonumber(redis.call('HGET', KEYS[7], 'shift') or '0')
local highest = tonumber(redis.call('HGET', KEYS[7], 'highest') or '0')
local seen = tonumber(redis.call('HGET', KEYS[7], 'seen') or '0')
local head = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
local now_v
if head[2] then
  now_v = math.floor(tonumber(head[2]) / 4294967296) + shift - 1
  if now_v > seen then redis.call('HSET', KEYS[7], 'seen', tostring(now_v)) end
elseif now - tonumber(redis.call('HGET', KEYS[7], 'admittedAt') or '0') > settle then
  now_v = highest
else
  now_v = seen
end
redis.call('HSET', KEYS[7], 'admittedAt', tostring(now))
local last = tonumber(redis.call('HGET', KEYS[7], 'tag:' .. tenant) or '0')
local start = math.max(now_v, last)
local finish = start + admitted / weight
redis.call('HSET', KEYS[7], 'tag:' .. tenant, tostring(finish))
if finish > highest then redis.call('HSET', KEYS[7], 'highest', tostring(finish)) end
if math.ceil(finish) - shift > 1048576 then
  shift = math.floor(now_v)
  redis.call('HSET', KEYS[7], 'shift', tostring(shift))
end
for i = 1, admitted do redis.call('ZADD', KEYS[6], 'NX', now, ARGV[6 + i]) end
redis.call('SADD', KEYS[8], tenant)
return {admitted, tostring(start), tostring(shift)}
`);

/** Drops a tenant from the in-flight tenants once its set is empty (re-added by the next admission). KEYS: in-flight set, tenants set. ARGV: tenant. */
const FORGET_IF_EMPTY = new LuaScript(`
if redis.call('ZCARD', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end
return 0
`);

export interface AdmitResult {
  admitted: number;
  /** Virtual start of the batch and the shift into BullMQ's range (dispatchPriority). */
  start: number;
  shift: number;
}

/** How long results are gathered before their executions leave their tenants' in-flight sets. */
const FINISHED_GATHER_MS = 2;

/** How long after the last admission an empty queue means everything admitted was served (addBulk takes milliseconds). */
const SETTLE_MS = 1_000;

/** Job states after which an execution no longer counts against its tenant. */
const DONE_STATES = new Set(['completed', 'failed', 'unknown']);

/**
 * The state of fair dispatch in Redis, beside the exec queue (its hash slot): per tenant the
 * executions it has in `exec` and its virtual finish tag. Executions leave their tenant's set when
 * their result arrives (`finished`), when they are canceled before starting, or, for any that
 * slipped through (a result lost with its worker, a job removed by hand), when `reconcile` finds
 * their job finished or gone.
 */
export class DispatchStore {
  private readonly base: string;
  /** Finished executions gathered for one ZREM per tenant (`finishedSoon`), and the flush they wait for. */
  private gathered = new Map<string, Set<string>>();
  private flush?: Promise<void>;

  constructor(
    private readonly redis: RedisClient,
    private readonly execQueue: Queue,
  ) {
    // `<prefix>:{q:exec}`: BullMQ's own keys are `<prefix>:{q:exec}:exec:<type>`.
    this.base = `${execQueue.opts.prefix}:dispatch`;
  }

  inFlightKey(tenantId: string): string {
    return `${this.base}:in-flight:${tenantId}`;
  }

  private get stateKey(): string {
    return `${this.base}:state`;
  }

  private get tenantsKey(): string {
    return `${this.base}:tenants`;
  }

  async admit(tenantId: string, executionIds: readonly string[], dispatch: TenantDispatch, globalMax: number, now: number): Promise<AdmitResult> {
    const k = this.execQueue.keys;
    const [admitted, start, shift] = (await ADMIT.run(
      this.redis,
      [k.wait!, k.active!, k.delayed!, k.prioritized!, k['waiting-children']!, this.inFlightKey(tenantId), this.stateKey, this.tenantsKey],
      [tenantId, String(dispatch.weight), String(dispatch.maxInFlight), String(globalMax), String(now), String(SETTLE_MS), ...executionIds],
    )) as [number, string, string];
    return { admitted: Number(admitted), start: Number(start), shift: Number(shift) };
  }

  /** These executions no longer count against their tenant (their results arrived, or they were canceled). */
  async finished(tenantId: string, executionIds: readonly string[]): Promise<void> {
    if (executionIds.length > 0) await this.redis.zrem(this.inFlightKey(tenantId), ...executionIds);
  }

  /**
   * `finished`, gathered over FINISHED_GATHER_MS with the other results arriving meanwhile: one
   * ZREM per tenant instead of one per result message. Resolves once they are removed.
   */
  finishedSoon(tenantId: string, executionIds: readonly string[]): Promise<void> {
    const ids = this.gathered.get(tenantId) ?? new Set<string>();
    for (const id of executionIds) ids.add(id);
    this.gathered.set(tenantId, ids);
    this.flush ??= new Promise<void>((resolve) => setTimeout(resolve, FINISHED_GATHER_MS)).then(() => {
      const batch = this.gathered;
      this.gathered = new Map();
      this.flush = undefined;
      return Promise.all([...batch].map(([tenant, done]) => this.finished(tenant, [...done]))).then(() => undefined);
    });
    return this.flush;
  }

  async inFlight(tenantId: string): Promise<number> {
    return this.redis.zcard(this.inFlightKey(tenantId));
  }

  /**
   * Removes, for every tenant, executions admitted more than `olderThanMs` ago whose job has
   * finished or is gone (at most `limit` checked per tenant); returns how many were removed.
   */
  async reconcile(olderThanMs: number, now: number, limit = 200): Promise<number> {
    let removed = 0;
    for (const tenantId of await this.redis.smembers(this.tenantsKey)) {
      const key = this.inFlightKey(tenantId);
      const old = await this.redis.zrangebyscore(key, '-inf', now - olderThanMs, 'LIMIT', 0, limit);
      const states = await Promise.all(old.map((id) => this.execQueue.getJobState(id)));
      const done = old.filter((_, i) => DONE_STATES.has(states[i]!));
      if (done.length > 0) removed += await this.redis.zrem(key, ...done);
      await FORGET_IF_EMPTY.run(this.redis, [key, this.tenantsKey], [tenantId]);
    }
    return removed;
  }
}
