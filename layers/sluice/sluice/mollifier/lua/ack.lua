-- The run exists in the engine: mark the entry materialised, keep it a short grace period for
-- reads, and hand the idempotency key to the engine.
-- KEYS: entry, draining [, lookup]
-- ARGV: runId, graceTtlSeconds
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
-- Compare-and-delete: after a self-heal the lookup may name a newer run.
if #KEYS == 3 and redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
end
redis.call('HSET', KEYS[1], 'materialised', 'true')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
