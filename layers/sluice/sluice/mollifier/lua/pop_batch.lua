-- Pop up to ARGV[1] entries of one shard in fair order and mark each DRAINING (pop time in the
-- draining set). A step rotates the organization ring by one (tail -> head, so concurrent callers
-- each get the next organization), then that organization's environment ring, then takes the
-- environment's oldest entry (the RPOP end, where a requeued entry waits). A step that finds an
-- emptied ring prunes it, one that finds an orphan (a queue reference whose entry is gone, not
-- QUEUED, or materialised) drops it: at most ARGV[2] such steps per call keep a call short when a
-- shard is full of orphans (the next call continues from there).
-- KEYS: orgs, draining, slot_guard
-- ARGV: count, maxWastedSteps, entryPrefix, queuePrefix, orgEnvsPrefix
-- Returns {orgsLeft, {field, value, ...}, ...}: the organizations left in the ring, then each
-- popped entry's hash in pop order.
--
-- Cluster: which org-envs, queue and entry keys a call touches is only known as it rotates, so it
-- builds them (prefix .. base64url(id), the prefixes from keys.ShardKeys) instead of receiving
-- them in KEYS. The prefixes carry the shard's hash tag, so every built key is in the declared
-- keys' slot, and Redis refuses a command of the script on a key of another slot. slot_guard is
-- never written: while the slot migrates, a declared key that does not exist makes Redis answer
-- ASK / TRYAGAIN instead of running the script, where a built key that had moved already (or
-- not yet) would read as missing and prune a live ring or drop a live entry.
local ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

-- base64url without padding, as keys.b64: 3 bytes -> 4 characters, a tail of 1 or 2 -> 2 or 3.
local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = string.byte(s, i, i + 2)
    local group = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 2
    if b then chars = chars + 1 end
    if c then chars = chars + 1 end
    for j = 0, chars - 1 do
      local index = math.floor(group / 2 ^ (18 - 6 * j)) % 64
      out[#out + 1] = string.sub(ALPHABET, index + 1, index + 1)
    end
  end
  return table.concat(out)
end

local orgs, draining = KEYS[1], KEYS[2]
local want, wasted_left = tonumber(ARGV[1]), tonumber(ARGV[2])
local entry_prefix, queue_prefix, envs_prefix = ARGV[3], ARGV[4], ARGV[5]
local now = redis.call('TIME')
local score = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
-- {orgsLeft, entry, entry, ...}: built in place (unpack has a stack limit, a batch may be large).
local result = {0}

-- Drop an environment whose queue is empty from its organization's ring, and the organization
-- from the shard's ring when it has no environment left.
local function prune(org, org_envs, env, queue)
  if env and redis.call('LLEN', queue) == 0 then
    redis.call('LREM', org_envs, 0, env)
  end
  if redis.call('LLEN', org_envs) == 0 then
    redis.call('LREM', orgs, 0, org)
  end
end

while #result - 1 < want and wasted_left > 0 do
  local org = redis.call('LMOVE', orgs, orgs, 'RIGHT', 'LEFT')
  if not org then
    break
  end
  local org_envs = envs_prefix .. b64(org)
  local env = redis.call('LMOVE', org_envs, org_envs, 'RIGHT', 'LEFT')
  local queue = env and queue_prefix .. b64(org) .. ':' .. b64(env)
  local run = queue and redis.call('LINDEX', queue, -1)
  if not run then
    prune(org, org_envs, env, queue)
    wasted_left = wasted_left - 1
  else
    local entry = entry_prefix .. b64(run)
    local state = redis.call('HMGET', entry, 'status', 'materialised')
    redis.call('RPOP', queue)
    -- Never HSET a missing hash: that would create a partial entry with no TTL.
    if state[1] == 'QUEUED' and state[2] ~= 'true' then
      redis.call('HSET', entry, 'status', 'DRAINING')
      redis.call('ZADD', draining, score, run)
      result[#result + 1] = redis.call('HGETALL', entry)
    else
      wasted_left = wasted_left - 1
    end
    prune(org, org_envs, env, queue)
  end
end
result[1] = redis.call('LLEN', orgs)
return result
