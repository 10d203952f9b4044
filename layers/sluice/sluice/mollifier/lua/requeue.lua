-- Return a DRAINING entry to the pop end of its queue with attempts + 1 (it pops next).
-- KEYS: entry, queue, org_envs, orgs, draining
-- ARGV: runId, envId, orgId, maxPopScore ('+inf', or the stale sweep's cutoff: an entry popped
-- again after the cutoff belongs to a live drainer and is left alone)
-- Returns the new attempt count, or 0 when the entry is not DRAINING (missing, already requeued,
-- acked or failed): requeueing twice would put the run in the queue twice.
if redis.call('HGET', KEYS[1], 'status') ~= 'DRAINING'
    or redis.call('HGET', KEYS[1], 'materialised') == 'true'
    or redis.call('HGET', KEYS[1], 'envId') ~= ARGV[2] then
  return 0
end
local score = redis.call('ZSCORE', KEYS[5], ARGV[1])
if ARGV[4] ~= '+inf' and (not score or tonumber(score) > tonumber(ARGV[4])) then
  return 0
end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') + 1
redis.call('HSET', KEYS[1], 'status', 'QUEUED', 'attempts', tostring(attempts))
redis.call('RPUSH', KEYS[2], ARGV[1])
if not redis.call('LPOS', KEYS[3], ARGV[2]) then
  redis.call('RPUSH', KEYS[3], ARGV[2])
end
if not redis.call('LPOS', KEYS[4], ARGV[3]) then
  redis.call('RPUSH', KEYS[4], ARGV[3])
end
redis.call('ZREM', KEYS[5], ARGV[1])
return attempts
