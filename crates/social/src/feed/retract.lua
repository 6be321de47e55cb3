-- Removes one post id from every feed in KEYS that holds it (layout as in push.lua).
local id = ARGV[1]

local function greater(feed, offset)
  for i = 1, 8 do
    local x, y = string.byte(feed, offset + i), string.byte(id, i)
    if x ~= y then return x > y end
  end
  return false
end

local removed = 0
for _, key in ipairs(KEYS) do
  local feed = redis.call('GET', key)
  if feed then
    local n = (#feed - 1) / 8
    local lo, hi = 0, n
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if greater(feed, 1 + mid * 8) then lo = mid + 1 else hi = mid end
    end
    if lo < n and string.sub(feed, 2 + lo * 8, 9 + lo * 8) == id then
      redis.call('SET', key, string.sub(feed, 1, 1 + lo * 8) .. string.sub(feed, 10 + lo * 8), 'KEEPTTL')
      removed = removed + 1
    end
  end
end
return removed
