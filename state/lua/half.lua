-- Lua's struct has no float16: h is decoded by hand where a script must undo a fold
local function half(b, pos)
  local u = struct.unpack('<H', b, pos)
  local e, m = math.floor(u / 1024) % 32, u % 1024
  local v
  if e == 0 then v = m * 2 ^ -24 elseif e == 31 then v = (m == 0) and math.huge or 0 / 0
  else v = (1024 + m) * 2 ^ (e - 25) end
  if u >= 32768 then return -v end
  return v
end
