-- Pop the run the caller saw at the pop end of an environment's queue and mark it DRAINING.
-- KEYS: queue, entry, draining, org_envs, orgs
-- ARGV: runId (the caller's LINDEX -1), envId, orgId
-- Returns {'popped', field, value, ...}, {'orphan'} (queue reference without a live entry: it is
-- dropped), {'moved'} (another caller popped first) or {'empty'}.
local function prune()
  if redis.call('LLEN', KEYS[1]) == 0 then
    redis.call('LREM', KEYS[4], 0, ARGV[2])
    if redis.call('LLEN', KEYS[4]) == 0 then
      redis.call('LREM', KEYS[5], 0, ARGV[3])
    end
  end
end

local tail = redis.call('LINDEX', KEYS[1], -1)
if not tail then
  prune()
  return {'empty'}
end
if tail ~= ARGV[1] then
  return {'moved'}
end
redis.call('RPOP', KEYS[1])
local result = {'orphan'}
-- Never HSET a missing hash: that would create a partial entry with no TTL.
if redis.call('HGET', KEYS[2], 'status') == 'QUEUED'
    and redis.call('HGET', KEYS[2], 'materialised') ~= 'true' then
  local now = redis.call('TIME')
  redis.call('HSET', KEYS[2], 'status', 'DRAINING')
  redis.call('ZADD', KEYS[3], tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), ARGV[1])
  result = redis.call('HGETALL', KEYS[2])
  table.insert(result, 1, 'popped')
end
prune()
return result
