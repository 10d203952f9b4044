-- Compare-and-delete: drop a stale idempotency lookup only if it still names the same run.
-- KEYS: key
-- ARGV: expected
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
