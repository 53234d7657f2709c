-- KEYS[1]: a slot group's centroid hash; ARGV: sums and counts of the shipped centroids.
-- Writes them only where no centroids are: a worker's start never resets what was learned.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'sums', ARGV[1], 'counts', ARGV[2], 'version', 0)
  return 1
end
return 0
