-- Record that items ARGV[2..] reached a stage: add them to the stage's set KEYS[1] (and, when
-- given, to KEYS[2] as well), refresh the TTL (ARGV[1] seconds) and count, in one atomic step.
-- Returns {how many were new to KEYS[1], members of KEYS[1]}.
local added = redis.call('SADD', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
if KEYS[2] then
  redis.call('SADD', KEYS[2], unpack(ARGV, 2))
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
return {added, redis.call('SCARD', KEYS[1])}
