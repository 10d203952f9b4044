-- Compare-and-delete of the caller's own pending claim (a stale release never erases a newer one).
-- KEYS: claim
-- ARGV: token
if redis.call('GET', KEYS[1]) == 'pending:' .. ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
