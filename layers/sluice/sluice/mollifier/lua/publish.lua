-- Compare-and-set: only the claim's owner publishes, so a stale owner cannot overwrite a newer one.
-- KEYS: claim
-- ARGV: token, runId, ttlSeconds
local value = redis.call('GET', KEYS[1])
if value == ARGV[2] then
  return 1  -- published already: this call's own retry
end
if value == 'pending:' .. ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
