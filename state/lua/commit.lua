-- (half.lua and runs.lua are prepended when the script is loaded)
-- ARGV: H, K, batch delta of centroid sums (K*H doubles) and counts (K doubles)
--       computed as if every record were written, history length L, the rows
--       whose segment differs from the previous one (int32s, 1-based), the
--       epochs the fence keys must still hold (F doubles), the batch's window
--       flows as if every record were written (int32 quads: window, segment
--       before, segment after, customers), the record size, then every
--       customer's record in one string (one argument, not n: packing and
--       parsing n arguments cost more than the script's work on them), the runs
--       and the ids (as _RUNS reads them). Rows are in bucket order.
--       KEYS: B bucket keys, then if L > 0 the same buckets' trajectory keys, the centroid, segment-size
--       and flow keys, then the F fence keys (state/fencing.py).
-- A fence key that moved refuses the whole batch before anything is written.
-- Rows the guard rejects are taken back out of the delta: rare (replays only),
-- so the common path touches each record's bytes once. Returns the rejected
-- rows (int32s, 1-based): usually none.
local H = tonumber(ARGV[1])
local K = tonumber(ARGV[2])
local dsums, dcounts, L, flips, epochs, flows = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local size, records, runs, ids = tonumber(ARGV[9]), ARGV[10], ARGV[11], ARGV[12]
local F = #epochs / 8
for f = 1, F do
  local fk = KEYS[#KEYS - F + f]
  local held = redis.call('GET', fk)
  if not held then return redis.error_reply('LOST ' .. fk) end
  if tonumber(held) ~= struct.unpack('<d', epochs, f * 8 - 7) then
    return redis.error_reply('FENCED ' .. fk)
  end
end
local B, n, E = #runs / 4, #records / size, 24 + 2 * H
local ck, sk, fl = KEYS[#KEYS - 2 - F], KEYS[#KEYS - 1 - F], KEYS[#KEYS - F]
local unpack4 = struct.unpack
local rejected, nrej, skip, undo_sum, undo_cnt, undo_flow = {}, 0, {}, {}, {}, {}
local i = 0
for k = 1, B do
  local f = fields(ids, unpack4('<i4', runs, k * 4 - 3))
  local olds = chunked('HMGET', KEYS[k], f, 4000)
  local sets, m, trails, tsets, latest = {}, 0, nil, {}, {}
  if L > 0 then trails = chunked('HMGET', KEYS[B + k], f, 4000) end
  for j = 1, #f do
    i = i + 1
    local new, old = string.sub(records, (i - 1) * size + 1, i * size), olds[j]
    if (not old) or unpack4('<i4', old) < unpack4('<i4', new) then
      sets[m + 1], sets[m + 2] = f[j], new
      m = m + 2
      if L > 0 then
        -- the trajectory is one string of its last L entries, oldest first: each the header and
        -- h, what the API draws and what forget un-folds; one field per customer, as the state
        local t = (latest[f[j]] or trails[j] or '') .. string.sub(new, 1, E)
        if #t > L * E then t = string.sub(t, -L * E) end
        tsets[m - 1], tsets[m] = f[j], t
        latest[f[j]] = t  -- a customer twice in the batch: the second entry follows the first
      end
    else
      nrej = nrej + 1
      rejected[nrej] = struct.pack('<i4', i)
      skip[i] = true
      local w, segw, prevw = unpack4('<i4i2i2', new, 1)
      if segw >= 0 then
        local fk = w .. ':' .. prevw .. ':' .. segw
        undo_flow[fk] = (undo_flow[fk] or 0) + 1
      end
      local seg = unpack4('<i2', new, 11)  -- the nearest centroid: the fold label
      if seg >= 0 then
        undo_cnt[seg] = (undo_cnt[seg] or 0) + 1
        for d = 0, H - 1 do
          undo_sum[seg * H + d] = (undo_sum[seg * H + d] or 0) + half(new, 25 + d * 2)
        end
      end
    end
  end
  if m > 0 then
    chunked('HSET', KEYS[k], sets, 4000)
    if L > 0 then chunked('HSET', KEYS[B + k], tsets, 4000) end
  end
end
for f = 1, #flips / 4 do
  local i = struct.unpack('<i4', flips, f * 4 - 3)
  if not skip[i] then
    local seg, prev = struct.unpack('<i2i2', records, (i - 1) * size + 5)
    if seg >= 0 then redis.call('HINCRBY', sk, seg, 1) end
    if prev >= 0 then redis.call('HINCRBY', sk, prev, -1) end
  end
end
for q = 1, #flows / 16 do
  local w, prevw, segw, cnt = struct.unpack('<i4i4i4i4', flows, q * 16 - 15)
  local f = w .. ':' .. prevw .. ':' .. segw
  cnt = cnt - (undo_flow[f] or 0)
  if cnt ~= 0 then redis.call('HINCRBY', fl, f, cnt) end
end
local any = false
for j = 0, K - 1 do
  if struct.unpack('<d', dcounts, j * 8 + 1) - (undo_cnt[j] or 0) > 0 then any = true break end
end
if any then
  local sums = redis.call('HGET', ck, 'sums')
  local counts = redis.call('HGET', ck, 'counts')
  local out, outc = {}, {}
  for j = 0, K * H - 1 do
    local v = struct.unpack('<d', sums, j * 8 + 1) + struct.unpack('<d', dsums, j * 8 + 1) - (undo_sum[j] or 0)
    out[j + 1] = struct.pack('<d', v)
  end
  for j = 0, K - 1 do
    local v = struct.unpack('<d', counts, j * 8 + 1) + struct.unpack('<d', dcounts, j * 8 + 1) - (undo_cnt[j] or 0)
    outc[j + 1] = struct.pack('<d', v)
  end
  redis.call('HSET', ck, 'sums', table.concat(out), 'counts', table.concat(outc))
  redis.call('HINCRBY', ck, 'version', 1)
end
return table.concat(rejected, '', 1, nrej)
