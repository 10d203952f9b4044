-- Pre-gate idempotency claim: the first caller owns the key until it publishes a run id.
-- KEYS: claim
-- ARGV: token, ttlSeconds
-- Returns 'claimed', 'pending' or 'resolved:<runId>'.
local mine = 'pending:' .. ARGV[1]
if redis.call('SET', KEYS[1], mine, 'NX', 'EX', ARGV[2]) then
  return 'claimed'
end
local value = redis.call('GET', KEYS[1])
if value == mine then
  return 'claimed'
end
if string.sub(value, 1, 8) == 'pending:' then
  return 'pending'
end
return 'resolved:' .. value
