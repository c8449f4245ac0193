import { LuaScript } from '@podflow/redis';

/**
 * Lua scripts over the keys of one run (one hash slot). The invariant that makes every step
 * atomic and idempotent with any number of coordinators:
 * - events are appended to the run's inbox, and only the holder of the run's lease applies them;
 * - a batch's changes, its events, its commands (into the outbox) and the deletion of the inbox
 *   entries it applied are written by one script, and only while the lease token is still the
 *   writer's (a coordinator that stalled past its lease writes nothing; the next owner applies
 *   the same entries to the records as they are);
 * - outbox entries are deleted by id once carried out, never by count, so a command written by
 *   anyone in between is never dropped; commands are idempotent (deterministic job ids), so one
 *   carried out twice after a crash is harmless.
 * Scripts go by SHA1 (LuaScript: EVALSHA, EVAL once per server).
 */

/** Sets fields of a hash from ARGV pairs starting at `i` (count at ARGV[i]); returns the next index. */
const HSET_PAIRS = `
local function hset_pairs(key, i)
  local n = tonumber(ARGV[i])
  for j = i + 1, i + 2 * n, 2 do redis.call('HSET', key, ARGV[j], ARGV[j + 1]) end
  return i + 1 + 2 * n
end
local function xadd_all(key, field, i, n, ids)
  local last = false
  for j = i, i + n - 1 do
    last = redis.call('XADD', key, 'MAXLEN', '~', 100000, '*', field, ARGV[j])
    if ids then ids[#ids + 1] = last end
  end
  return last
end
`;

/**
 * Create a run with its first transition applied, holding its lease. KEYS: run, nodes, events,
 * outbox, lease, inbox. ARGV: rec, inputs, leaseToken, leaseMs, channel, nodeCount, (id, json)...,
 * eventCount, events..., commandCount, commands..., notify targets JSON ('' = none), terminal
 * ('1'|'0'), retentionSeconds, followCount, follow-up events... (into the inbox: the rest of
 * many roots, `start_roots`; the creator, holding the lease, applies them next).
 * Returns {1, outbox ids of the commands in order} when created (the creator carries them out
 * without reading them back, as after COMMIT_BATCH), 0 when the run already exists.
 */
export const CREATE_RUN = new LuaScript(`${HSET_PAIRS}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'inputs', ARGV[2])
local i = hset_pairs(KEYS[2], 6)
local events = tonumber(ARGV[i])
local last = xadd_all(KEYS[3], 'e', i + 1, events)
i = i + 1 + events
local commands = tonumber(ARGV[i])
local written = {1}
xadd_all(KEYS[4], 'c', i + 1, commands, written)
local notify = ARGV[i + 1 + commands]
if notify ~= '' then redis.call('HSET', KEYS[1], 'notify', notify) end
-- A run over at creation (a root's input binding failed) expires like one that ended later.
if ARGV[i + 2 + commands] == '1' then
  for k = 1, 4 do redis.call('EXPIRE', KEYS[k], ARGV[i + 3 + commands]) end
end
i = i + 4 + commands
for j = i + 1, i + tonumber(ARGV[i]) do redis.call('XADD', KEYS[6], '*', 'e', ARGV[j]) end
redis.call('SET', KEYS[5], ARGV[3], 'PX', ARGV[4])
if last then redis.call('PUBLISH', ARGV[5], last) end
return written
`);

/**
 * Append events to a run's inbox (in order) and try to take its lease. KEYS: run, inbox, lease,
 * outbox. ARGV: leaseToken, leaseMs, batchMax, events... Returns -1 when the run does not exist
 * (expired or never created), 0 when another coordinator holds the lease (it will apply these
 * events before it lets the lease go: NEXT_BATCH), else the caller now holds the lease and must
 * apply the inbox: {rec, XRANGE reply of up to batchMax inbox entries, outbox length}, what
 * NEXT_BATCH would read next, so a session that starts here saves that round trip (and the
 * outbox read, when the outbox is empty).
 */
export const SUBMIT_EVENTS = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
for j = 4, #ARGV do redis.call('XADD', KEYS[2], '*', 'e', ARGV[j]) end
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
return {redis.call('HGET', KEYS[1], 'rec') or '', redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', ARGV[3]), redis.call('XLEN', KEYS[4])}
`);

/**
 * Write a batch. KEYS: run, nodes, logs, edges, events, outbox, inbox, lease.
 * ARGV: leaseToken, leaseMs, channel, terminal ('1'|'0'), retentionSeconds, rec ('' = unchanged),
 * nodeCount, (id, json)..., logCount, (id, json)..., edgeCount, (index, 'f'|'n')...,
 * appliedCount, inbox ids..., eventCount, events..., commandCount, commands..., followCount,
 * follow-up events... (appended to the inbox: the rest of a wide fan-out, `resolve_edges`).
 * Returns {1, outbox ids of the commands in order} when written (the writer carries them out
 * without reading them back), 0 when nothing was written: the lease is no longer the caller's,
 * or its batch was applied already. The lease token is one per process, so a session that
 * stalled past its lease can find it held by its own process again (another session of that
 * process took it after a third coordinator applied the batch); its first inbox entry is gone
 * then (only commits delete entries, always from the front), and its records are stale.
 */
export const COMMIT_BATCH = new LuaScript(`${HSET_PAIRS}
if redis.call('GET', KEYS[8]) ~= ARGV[1] then return 0 end
local function skip_pairs(i) return i + 1 + 2 * tonumber(ARGV[i]) end
local first = skip_pairs(skip_pairs(skip_pairs(7)))
if tonumber(ARGV[first]) > 0 and #redis.call('XRANGE', KEYS[7], ARGV[first + 1], ARGV[first + 1]) == 0 then return 0 end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'rec', ARGV[6]) end
local i = hset_pairs(KEYS[2], 7)
i = hset_pairs(KEYS[3], i)
i = hset_pairs(KEYS[4], i)
local applied = tonumber(ARGV[i])
for j = i + 1, i + applied do redis.call('XDEL', KEYS[7], ARGV[j]) end
i = i + 1 + applied
local events = tonumber(ARGV[i])
local last = xadd_all(KEYS[5], 'e', i + 1, events)
i = i + 1 + events
local written = {1}
xadd_all(KEYS[6], 'c', i + 1, tonumber(ARGV[i]), written)
i = i + 1 + tonumber(ARGV[i])
-- Never trimmed, unlike the streams above: an inbox entry dropped would be an event lost.
for j = i + 1, i + tonumber(ARGV[i]) do redis.call('XADD', KEYS[7], '*', 'e', ARGV[j]) end
redis.call('PEXPIRE', KEYS[8], ARGV[2])
if ARGV[4] == '1' then
  for k = 1, 7 do redis.call('EXPIRE', KEYS[k], ARGV[5]) end
end
if last then redis.call('PUBLISH', ARGV[3], last) end
return written
`);

/**
 * The lease holder's next step, in one round trip: acknowledge the outbox entries it carried out,
 * then either read the next batch or, when no event waits, let the lease go. KEYS: run, inbox,
 * outbox, lease. ARGV: leaseToken, leaseMs, batchMax, outbox ids to acknowledge...
 * Returns -1 when the lease is not the caller's any more (nothing done), 0 when released, else
 * {rec ('' when the run is gone), XRANGE reply of up to batchMax inbox entries} with the lease
 * renewed. Checked in one script so an event appended by a coordinator that could not take the
 * lease is never left without an owner.
 */
export const NEXT_BATCH = new LuaScript(`
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return -1 end
for j = 4, #ARGV do redis.call('XDEL', KEYS[3], ARGV[j]) end
if redis.call('XLEN', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[4])
  return 0
end
redis.call('PEXPIRE', KEYS[4], ARGV[2])
local rec = redis.call('HGET', KEYS[1], 'rec') or ''
return {rec, redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', ARGV[3])}
`);

/**
 * Add notify targets to a run (a second submission with the same idempotency key). KEYS: run.
 * ARGV: most targets kept, JSON array of [identity, target] pairs. The field holds such pairs.
 * Returns {run record JSON, targets refused for want of room} (the caller delivers at once when
 * the run is terminal), false when the run does not exist.
 */
export const ADD_NOTIFY_TARGETS = new LuaScript(`
local rec = redis.call('HGET', KEYS[1], 'rec')
if not rec then return false end
local current = redis.call('HGET', KEYS[1], 'notify')
local list = {}
if current then list = cjson.decode(current) end
local seen = {}
for _, entry in ipairs(list) do seen[entry[1]] = true end
local refused = 0
for _, entry in ipairs(cjson.decode(ARGV[2])) do
  if not seen[entry[1]] then
    if #list < tonumber(ARGV[1]) then
      seen[entry[1]] = true
      list[#list + 1] = entry
    else
      refused = refused + 1
    end
  end
end
if #list > 0 then redis.call('HSET', KEYS[1], 'notify', cjson.encode(list)) end
return {rec, refused}
`);

/**
 * Mark a run active with a score none of its marks had before: `now`, or the current mark + 1
 * when that is not older. Marks are told apart by their scores (an ending session clears only
 * its own: ZREM_IF_SCORE), so a mark set in the millisecond another was set must not take its
 * score. KEYS: active runs. ARGV: run id, now. Returns {the score set, 1 when it replaced a mark}.
 */
export const MARK_ACTIVE = new LuaScript(`
local score = tonumber(ARGV[2])
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
if current and tonumber(current) >= score then score = tonumber(current) + 1 end
redis.call('ZADD', KEYS[1], score, ARGV[1])
return {score, current and 1 or 0}
`);

/** Remove a member of a sorted set only if its score is still `score`. KEYS: zset. ARGV: member, score. */
export const ZREM_IF_SCORE = new LuaScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`);

/** Remove a member of a sorted set only if its score is below ARGV[2]. KEYS: zset. ARGV: member, bound. */
export const ZREM_IF_OLDER = new LuaScript(`
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) < tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`);

/**
 * Remember a tenant's latest succeeded run of a workflow (what a test run of one node reads its
 * upstream values from), unless a run that finished later is remembered already. KEYS: the
 * tenant's hash (workflow id → `<finishedAt>:<runId>`). ARGV: workflowId, finishedAt, runId,
 * ttlSeconds (the hash lives as long as the runs it names may).
 */
export const NOTE_SUCCEEDED = new LuaScript(`
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local at = tonumber(string.match(current, '^(%d+):'))
  if at and at > tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
`);
