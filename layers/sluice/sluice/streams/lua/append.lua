-- Append chunks to one stream, atomically and in order, each at most once per part id.
-- KEYS[1] data stream, KEYS[2] parts hash, KEYS[3] meta hash (one hash tag: one cluster slot).
-- Run as a sluice.redis.OnceScript: the Redis client retries a call whose reply timed out, and
-- Redis may have run it already, so a second run of the same call answers the first one's reply.
-- ARGV[1] tenant (<orgId>/<envId>) of the writer's token
-- ARGV[2] approximate MAXLEN, ARGV[3] TTL seconds (refreshed on every write)
-- ARGV[4] the run attempt the token was minted for ("0": a token bound to no attempt)
-- ARGV[5..] pairs: part id ("" for none), chunk JSON
-- Returns {"ok", deduplicated, id1, ..., idN} (a deduplicated chunk gives its first entry's id),
-- or {"closed"} / {"tenant"} / {"stale"} (an attempt below the meta's fence) having written nothing.
local tenant = redis.call('HGET', KEYS[3], 'tenant')
if tenant and tenant ~= ARGV[1] then
  return {'tenant'}
end
if redis.call('HGET', KEYS[3], 'closed') then
  return {'closed'}
end
local attempt = tonumber(ARGV[4])
if attempt > 0 and attempt < tonumber(redis.call('HGET', KEYS[3], 'fence') or '0') then
  return {'stale'}
end
if not tenant then
  redis.call('HSET', KEYS[3], 'tenant', ARGV[1])
end
local result = {'ok', 0}
local deduplicated = 0
for i = 5, #ARGV, 2 do
  local part = ARGV[i]
  local id = false
  if part ~= '' then
    id = redis.call('HGET', KEYS[2], part)
  end
  if id then
    deduplicated = deduplicated + 1
  else
    id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'd', ARGV[i + 1])
    if part ~= '' then
      redis.call('HSET', KEYS[2], part, id)
    end
  end
  result[#result + 1] = id
end
result[2] = deduplicated
for i = 1, 3 do
  redis.call('EXPIRE', KEYS[i], ARGV[3])
end
return result
