-- Take back an entry that no durable copy carries (its drain signal could not be sent), so that a
-- trigger answered 503 leaves nothing behind to become a run later.
-- KEYS: entry, queue [, lookup]
-- ARGV: runId
-- Returns 'withdrawn' (removed, or already gone: a retry of this call after a lost reply finds
-- nothing) or 'taken' (a drainer popped it, or it is materialised: it becomes a run anyway).
local state = redis.call('HMGET', KEYS[1], 'status', 'materialised')
if not state[1] then
  return 'withdrawn'
end
if state[1] ~= 'QUEUED' or state[2] == 'true' then
  return 'taken'
end
redis.call('LREM', KEYS[2], 0, ARGV[1])
-- Compare-and-delete: the lookup may name a newer run after a self-heal.
if #KEYS == 3 and redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
end
redis.call('DEL', KEYS[1])
return 'withdrawn'
