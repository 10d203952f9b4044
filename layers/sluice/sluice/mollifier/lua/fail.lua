-- The engine could not record the run, not even as FAILED: keep the entry as FAILED (readable
-- through GET for failedTtlSeconds), out of every queue, and release its idempotency key.
-- KEYS: entry, draining [, lookup]
-- ARGV: runId, errorJson, failedTtlSeconds
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if #KEYS == 3 and redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
end
redis.call('HSET', KEYS[1], 'status', 'FAILED', 'lastError', ARGV[2], 'idempotencyLookupKey', '')
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
