/**
 * Lua scripts that make every run transition atomic: the new state, its events and its outbox of
 * commands are written together or not at all, and only over the version they were computed from.
 */

/**
 * Create a run. KEYS: run, events, outbox, pendingOutboxes, tenantRuns, idempotency.
 * ARGV: runId, stateJson, createdAt, hasIdempotencyKey ('1'|'0'), idempotencyTtl, retention,
 * eventCount, events..., commands...
 * Returns the id of the run: the existing one when the idempotency key was seen before.
 */
export const CREATE_RUN = `
if ARGV[4] == '1' then
  local existing = redis.call('GET', KEYS[6])
  if existing then return existing end
  redis.call('SET', KEYS[6], ARGV[1], 'EX', ARGV[5])
end
if redis.call('EXISTS', KEYS[1]) == 1 then return ARGV[1] end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'v', 1)
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
local eventCount = tonumber(ARGV[7])
local lastEvent = false
for i = 8, 7 + eventCount do
  lastEvent = redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', 'e', ARGV[i])
end
-- Announce the new entries on the run's channel (runEventsChannel: <prefix>:run-events:<runId>),
-- the prefix being what precedes ':run:<runId>:events' in KEYS[2].
if lastEvent then
  local suffix = ':run:' .. ARGV[1] .. ':events'
  redis.call('PUBLISH', string.sub(KEYS[2], 1, #KEYS[2] - #suffix) .. ':run-events:' .. ARGV[1], lastEvent)
end
local commands = 0
for i = 8 + eventCount, #ARGV do
  redis.call('RPUSH', KEYS[3], ARGV[i])
  commands = commands + 1
end
if commands > 0 then redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1]) end
return ARGV[1]
`;

/**
 * Compare-and-set a run's state. KEYS: run, events, outbox, pendingOutboxes.
 * ARGV: runId, expectedVersion, stateJson, now, terminal ('1'|'0'), retention, eventCount,
 * events..., commands...
 * Returns 1 when written, 0 when the version moved (the caller reloads and recomputes).
 */
export const SAVE_RUN = `
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'v', tonumber(ARGV[2]) + 1)
local eventCount = tonumber(ARGV[7])
local lastEvent = false
for i = 8, 7 + eventCount do
  lastEvent = redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', 'e', ARGV[i])
end
-- Announce the new entries on the run's channel (runEventsChannel: <prefix>:run-events:<runId>),
-- the prefix being what precedes ':run:<runId>:events' in KEYS[2].
if lastEvent then
  local suffix = ':run:' .. ARGV[1] .. ':events'
  redis.call('PUBLISH', string.sub(KEYS[2], 1, #KEYS[2] - #suffix) .. ':run-events:' .. ARGV[1], lastEvent)
end
local commands = 0
for i = 8 + eventCount, #ARGV do
  redis.call('RPUSH', KEYS[3], ARGV[i])
  commands = commands + 1
end
if commands > 0 then redis.call('ZADD', KEYS[4], 'NX', ARGV[4], ARGV[1]) end
if ARGV[5] == '1' then
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
return 1
`;

/**
 * Drop the first N outbox commands once carried out. KEYS: outbox, pendingOutboxes.
 * ARGV: runId, count. Clears the pending mark when nothing is left.
 */
export const ACK_OUTBOX = `
redis.call('LTRIM', KEYS[1], tonumber(ARGV[2]), -1)
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 1
`;
