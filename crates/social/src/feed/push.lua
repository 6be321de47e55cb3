-- Inserts one post id into every feed in KEYS that exists, keeping newest-first order, without
-- duplicates (a redelivered event changes nothing), capped at ARGV[2] entries.
-- A feed is one string: a flag byte ('1' = holds the whole feed, '0' = older posts may exist
-- in the database) and then 8-byte big-endian post ids, newest first.
-- Absent keys are feeds nobody has read lately: they are rebuilt on the next read instead.
-- Ids are compared byte by byte: Lua's string `<` follows the server's collation.
local id = ARGV[1]
local cap = tonumber(ARGV[2])

local function greater(feed, offset)
  for i = 1, 8 do
    local x, y = string.byte(feed, offset + i), string.byte(id, i)
    if x ~= y then return x > y end
  end
  return false
end

local updated = 0
for _, key in ipairs(KEYS) do
  local feed = redis.call('GET', key)
  if feed then
    local n = (#feed - 1) / 8
    local lo, hi = 0, n
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if greater(feed, 1 + mid * 8) then lo = mid + 1 else hi = mid end
    end
    if lo >= n or string.sub(feed, 2 + lo * 8, 9 + lo * 8) ~= id then
      local flag = string.sub(feed, 1, 1)
      local body = string.sub(feed, 2, 1 + lo * 8) .. id .. string.sub(feed, 2 + lo * 8)
      if #body > cap * 8 then
        body = string.sub(body, 1, cap * 8)
        flag = '0'
      end
      redis.call('SET', key, flag .. body, 'KEEPTTL')
      updated = updated + 1
    end
  end
end
return updated
