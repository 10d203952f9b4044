-- Drop an environment whose queue is empty from its organization's ring, and the organization
-- from the shard's ring when it has no environment left.
-- KEYS: org_envs, orgs [, queue]
-- ARGV: orgId [, envId]
if #KEYS == 3 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('LREM', KEYS[1], 0, ARGV[2])
end
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
end
return 1
