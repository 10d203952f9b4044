-- Record that item ARGV[1] reached a stage: add it to the stage's set KEYS[1] (and, when given,
-- to KEYS[2] as well), refresh the TTL (ARGV[2] seconds) and count, in one atomic step.
-- Returns {added (1 the first time, 0 after), members of KEYS[1]}.
local added = redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if KEYS[2] then
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return {added, redis.call('SCARD', KEYS[1])}
