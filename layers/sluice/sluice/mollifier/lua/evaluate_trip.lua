-- Fixed-window trigger counter per environment plus a hold that every over-threshold call
-- re-arms (so a sustained burst keeps diversion on).
-- KEYS: rate, tripped
-- ARGV: windowMs, threshold, holdMs
-- Returns {count, tripped (0|1)}.
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
if count > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
end
return {count, redis.call('EXISTS', KEYS[2])}
