-- A token bucket: KEYS[1] HASH {tokens, refilledAt (ms)}. ARGV: capacity, tokens added per
-- interval, interval (ms), cost. Time is the server's, so every Lambda shares one clock.
-- Returns {allowed (0|1), tokens left, now (ms), ms until `cost` tokens are available}.
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local state = redis.call('HMGET', KEYS[1], 'tokens', 'refilledAt')
local tokens = tonumber(state[1])
local refilled = tonumber(state[2])
if tokens == nil or refilled == nil then
  tokens, refilled = capacity, now
end
local periods = math.floor((now - refilled) / interval)
if periods > 0 then
  tokens = math.min(capacity, tokens + periods * refill)
  refilled = refilled + periods * interval
end
if tokens >= capacity then
  -- A full bucket banks no partial period.
  refilled = now
end

local allowed, wait = 0, 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = refilled + math.ceil((cost - tokens) / refill) * interval - now
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'refilledAt', refilled)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / refill) * interval + interval)
return {allowed, tokens, now, wait}
