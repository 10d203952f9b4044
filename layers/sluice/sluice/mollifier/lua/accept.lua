-- Accept a trigger into the buffer (idempotent on run id; binds the idempotency lookup).
-- KEYS: entry, queue, org_envs, orgs [, lookup, bound_entry]
-- ARGV: runId, envId, orgId, taskId, snapshot, createdAt, createdAtMicros [, expectedBound]
-- bound_entry is the entry of the run the caller read from lookup (expectedBound, '' for none):
-- the script re-checks the lookup so that the key it touches is declared, and answers 'retry'
-- when the binding changed since the caller read it.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'duplicate_run_id'
end
local lookup = ''
if #KEYS == 6 then
  local bound = redis.call('GET', KEYS[5]) or ''
  if bound ~= ARGV[8] then
    return 'retry'
  end
  -- A binding whose entry is gone (evicted) is stale: rebind it to this run (self-heal).
  if bound ~= '' and redis.call('EXISTS', KEYS[6]) == 1 then
    return 'duplicate_idempotency:' .. bound
  end
  redis.call('SET', KEYS[5], ARGV[1])
  lookup = KEYS[5]
end
redis.call('HSET', KEYS[1],
  'runId', ARGV[1], 'envId', ARGV[2], 'orgId', ARGV[3], 'taskId', ARGV[4], 'snapshot', ARGV[5],
  'status', 'QUEUED', 'attempts', '0', 'createdAt', ARGV[6], 'createdAtMicros', ARGV[7],
  'idempotencyLookupKey', lookup)
redis.call('LPUSH', KEYS[2], ARGV[1])
-- New ring members go to the RPOP end: the next rotation serves them.
if not redis.call('LPOS', KEYS[3], ARGV[2]) then
  redis.call('RPUSH', KEYS[3], ARGV[2])
end
if not redis.call('LPOS', KEYS[4], ARGV[3]) then
  redis.call('RPUSH', KEYS[4], ARGV[3])
end
return 'accepted'
