-- Close one stream: mark it closed and add the end entry that readers turn into `event: end`.
-- KEYS as append.lua, and run as a OnceScript too (a retried close would answer "closed already").
-- ARGV[1] the writer's tenant, <orgId>/<envId> ("" when the platform closes it, as when a run
-- finishes), ARGV[2] TTL seconds.
-- Returns {"ok", end entry id}, {"ok", ""} when it was closed already, or {"tenant"}.
local tenant = redis.call('HGET', KEYS[3], 'tenant')
if ARGV[1] ~= '' and tenant and tenant ~= ARGV[1] then
  return {'tenant'}
end
if redis.call('HGET', KEYS[3], 'closed') then
  return {'ok', ''}
end
redis.call('HSET', KEYS[3], 'closed', '1')
local id = redis.call('XADD', KEYS[1], '*', 'e', '1')
for _, key in ipairs(KEYS) do
  redis.call('EXPIRE', key, ARGV[2])
end
return {'ok', id}
