-- KEYS[1]: a fence copy in one slot group; ARGV[1]: the epoch just claimed. Never lowered,
-- so a slow claimer of an older epoch cannot undo a newer claim.
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 0
