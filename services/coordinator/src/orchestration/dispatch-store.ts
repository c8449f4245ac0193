import { LuaScript, type RedisClient } from '@podflow/redis';
import type { Queue } from 'bullmq';
import type { TenantDispatch } from '../tenancy/dispatch-policy';

/**
 * Admits one batch of a tenant's ready executions onto `exec`, atomically with every other
 * coordinator (all keys share the exec queue's hash slot). KEYS: wait, active, delayed,
 * prioritized, waiting-children (BullMQ's, of `exec`), the tenant's in-flight set, the dispatch
 * state hash, the set of tenants with executions in flight, the recent batches. ARGV: tenant,
 * weight, tenant cap, global cap, now, settle ms, BullMQ job key prefix, executionId...
 * Returns {admitted, start, shift}: the first `admitted` ids go in.
 *
 * - Caps: the tenant's in-flight set (execution ids, scored by admission time) and the size of
 *   `exec`, plus the batches admitted whose jobs are not added yet, are counted here, so a cap
 *   holds across coordinators. An id already in the set (an outbox entry carried out again after
 *   a crash) keeps its place and needs no room.
 * - Order (start-time fair queuing): each tenant has a virtual finish tag. A batch starts at
 *   max(virtual time, the tenant's tag) and takes 1/weight level per execution; BullMQ serves the
 *   lowest priority (level) first. A tenant that arrives starts level with the others, not behind
 *   everything queued before it, and a backlog only lengthens its own tenant's line.
 * - Virtual time never goes back (`seen`, what earlier admissions saw): the level at the head of
 *   the prioritized set. An old job back at the head (a BullMQ retry, a job a stopping worker
 *   handed back) cannot undo what was seen, though it hides progress made since the last
 *   admission until it is taken. When nothing waits there, everything
 *   admitted was taken except batches whose jobs are still on their way (admitted, not yet
 *   `added`; an entry a crashed coordinator left is ignored after `settle` ms): the earliest
 *   start among those, else the highest tag handed out.
 * - Levels are absolute; `shift` maps them into BullMQ's range (1..2^21-1). When they grow past
 *   2^20 above it, the shift moves up to the virtual time, and the jobs already waiting (and the
 *   priorities delayed ones will come back with) move down by as much, so their order holds.
 * - Numbers are stored with 17 significant digits (Lua's tostring keeps 14).
 */
const ADMIT = new LuaScript(`
local n = #ARGV - 7
local tenant, weight, tenantCap, globalCap, now, settle, jobPrefix = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local TWO32 = 4294967296
local function num(x) return string.format('%.17g', x) end
local function get(field) return tonumber(redis.call('HGET', KEYS[7], field) or '0') end

-- Batches admitted whose jobs are not in exec yet count against the global cap too.
redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', now - settle)
local pending = 0
local recent = redis.call('ZRANGE', KEYS[9], 0, -1)
for _, member in ipairs(recent) do pending = pending + tonumber(string.match(member, '|(%d+)$')) end
local room = math.min(tenantCap - redis.call('ZCARD', KEYS[6]),
  globalCap - pending - (redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]) + redis.call('ZCARD', KEYS[5])))
local admitted = 0
for i = 1, n do
  local id = ARGV[7 + i]
  local counted = redis.call('ZSCORE', KEYS[6], id)
  if not counted then
    if room <= 0 then break end
    room = room - 1
  end
  -- Scored now: reconcile must not take an entry re-admitted after a crash for a leak.
  redis.call('ZADD', KEYS[6], now, id)
  admitted = i
end
if admitted == 0 then return {0, '0', '0', ''} end

local shift, highest, seen = get('shift'), get('highest'), get('seen')
local v
local head = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
if head[2] then
  v = math.floor(tonumber(head[2]) / TWO32) + shift - 1
else
  v = highest
  for _, member in ipairs(recent) do
    local s = tonumber(string.match(member, '^[^|]+'))
    if s < v then v = s end
  end
end
if v < seen then v = seen end
redis.call('HSET', KEYS[7], 'seen', num(v))

local start = math.max(v, get('tag:' .. tenant))
local finish = start + admitted / weight
redis.call('HSET', KEYS[7], 'tag:' .. tenant, num(finish))
if finish > highest then redis.call('HSET', KEYS[7], 'highest', num(finish)) end
local batch = num(start) .. '|' .. ARGV[8] .. '|' .. admitted
redis.call('ZADD', KEYS[9], now, batch)

if math.ceil(finish) - shift > 1048576 then
  local delta = math.floor(v) - 1 - shift
  if delta > 0 then
    local waiting = redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES')
    for i = 1, #waiting, 2 do
      local score = tonumber(waiting[i + 1])
      local p = math.floor(score / TWO32)
      local moved = math.max(1, p - delta)
      redis.call('ZADD', KEYS[4], moved * TWO32 + (score - p * TWO32), waiting[i])
      redis.call('HSET', jobPrefix .. waiting[i], 'priority', moved)
    end
    for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
      local p = tonumber(redis.call('HGET', jobPrefix .. id, 'priority') or '0')
      if p > 0 then redis.call('HSET', jobPrefix .. id, 'priority', math.max(1, p - delta)) end
    end
    shift = shift + delta
    redis.call('HSET', KEYS[7], 'shift', num(shift))
  end
end
redis.call('SADD', KEYS[8], tenant)
return {admitted, num(start), num(shift), batch}
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
  /** Names the batch until its jobs are in `exec` (`added`). */
  batch: string;
}

/** How long results are gathered before their executions leave their tenants' in-flight sets. */
const FINISHED_GATHER_MS = 2;

/** How long a batch's jobs may take to reach `exec` after their admission (addBulk takes milliseconds). */
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

  /** Batches admitted whose jobs are not in exec yet (at most SETTLE_MS), scored by time, members `<start>|<first id>|<count>`. */
  private get recentKey(): string {
    return `${this.base}:recent`;
  }

  private get tenantsKey(): string {
    return `${this.base}:tenants`;
  }

  async admit(tenantId: string, executionIds: readonly string[], dispatch: TenantDispatch, globalMax: number, now: number): Promise<AdmitResult> {
    const k = this.execQueue.keys;
    const [admitted, start, shift, batch] = (await ADMIT.run(
      this.redis,
      [k.wait!, k.active!, k.delayed!, k.prioritized!, k['waiting-children']!, this.inFlightKey(tenantId), this.stateKey, this.tenantsKey, this.recentKey],
      [tenantId, String(dispatch.weight), String(dispatch.maxInFlight), String(globalMax), String(now), String(SETTLE_MS), k['']!, ...executionIds],
    )) as [number, string, string, string];
    return { admitted: Number(admitted), start: Number(start), shift: Number(shift), batch };
  }

  /** The jobs of an admitted batch are in `exec`: it no longer holds virtual time back. */
  async added(batch: string): Promise<void> {
    if (batch) await this.redis.zrem(this.recentKey, batch);
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
