-- the batch's ids, sorted by bucket: one byte of length, then the id; ``runs`` holds each
-- bucket's count (int32s), in the order of the bucket keys
local pos = 1
local function fields(idblob, cnt)
  local f = {}
  for j = 1, cnt do
    local len = string.byte(idblob, pos)
    f[j] = string.sub(idblob, pos + 1, pos + len)
    pos = pos + len + 1
  end
  return f
end
-- unpack() is bounded by Lua's C stack, so long argument lists go in chunks
local function chunked(cmd, key, list, step)
  local out = {}
  for s = 1, #list, step do
    local r = redis.call(cmd, key, unpack(list, s, math.min(s + step - 1, #list)))
    if type(r) == 'table' then for _, v in ipairs(r) do out[#out + 1] = v end end
  end
  return out
end
