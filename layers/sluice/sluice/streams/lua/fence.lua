-- Raise a stream's attempt fence: appends with a token of an older attempt are refused after it.
-- KEYS[1] meta hash; ARGV[1] the attempt, ARGV[2] TTL seconds.
-- Only ever raised (a late call for an older attempt leaves a newer fence), so a max, atomically.
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if tonumber(ARGV[1]) > fence then
  redis.call('HSET', KEYS[1], 'fence', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return fence
