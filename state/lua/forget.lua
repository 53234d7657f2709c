-- (half.lua is prepended when the script is loaded)
-- KEYS: bucket key, trajectory bucket key, centroid key, segment-size key. ARGV: H, customer id.
-- Takes the customer out of the segment sizes and takes back the centroid folds we can
-- attribute to them (the stored trajectory, or the current state without one), then
-- deletes both; in one atomic step, so the worker's commits never see half of it.
-- Returns 1 if there was a state, else 0.
local H = tonumber(ARGV[1])
local rec = redis.call('HGET', KEYS[1], ARGV[2])
local trail = redis.call('HGET', KEYS[2], ARGV[2]) or ''
local hist, E = {}, 24 + 2 * H
for p = 1, #trail, E do hist[#hist + 1] = string.sub(trail, p, p + E - 1) end
if not rec and #hist == 0 then return 0 end
if rec then
  local seg = struct.unpack('<i2', rec, 5)
  if seg >= 0 then redis.call('HINCRBY', KEYS[4], seg, -1) end
end
local folds = hist
if #folds == 0 then folds = {rec} end
local sums = redis.call('HGET', KEYS[3], 'sums')
local counts = redis.call('HGET', KEYS[3], 'counts')
if sums then
  local dsum, dcnt, any = {}, {}, false
  for _, r in ipairs(folds) do
    local j = struct.unpack('<i2', r, 11)
    if j >= 0 then
      any = true
      dcnt[j] = (dcnt[j] or 0) + 1
      for d = 0, H - 1 do dsum[j * H + d] = (dsum[j * H + d] or 0) + half(r, 25 + d * 2) end
    end
  end
  if any then
    local K = #counts / 8
    local out, outc = {}, {}
    for j = 0, K * H - 1 do out[j + 1] = struct.pack('<d', struct.unpack('<d', sums, j * 8 + 1) - (dsum[j] or 0)) end
    for j = 0, K - 1 do outc[j + 1] = struct.pack('<d', struct.unpack('<d', counts, j * 8 + 1) - (dcnt[j] or 0)) end
    redis.call('HSET', KEYS[3], 'sums', table.concat(out), 'counts', table.concat(outc))
    redis.call('HINCRBY', KEYS[3], 'version', 1)
  end
end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
