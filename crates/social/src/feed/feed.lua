-- Inserts (ARGV[2] = 'push') or removes (ARGV[2] = 'retract') one post id, ARGV[1], in every
-- feed in KEYS that exists. A feed is one string: a flag byte ('1' = holds the whole feed,
-- '0' = older posts may exist in the database), then 8-byte big-endian post ids, newest first.
-- Pushes keep that order, skip ids already there (a redelivered event changes nothing) and cap
-- the feed at ARGV[3] entries. Absent keys are feeds nobody has read lately: they are rebuilt
-- on the next read instead. Returns how many feeds changed.
-- Ids are compared byte by byte: Lua's string `<` follows the server's collation.
-- A push carries the post's author (ARGV[4]) and the author's tick at the post's commit
-- (ARGV[5]): a feed whose owner unfriended the author at a later tick (`<feed>:gone`) has
-- been dropped for that, and the post, still on its way, is kept out of the rebuilt feed.
local id, action = ARGV[1], ARGV[2]
local cap = tonumber(ARGV[3])
local author, tick = ARGV[4], tonumber(ARGV[5])

local function unfollowed(key)
  local ended = redis.call('HGET', key .. ':gone', author)
  return ended and tonumber(ended) > tick
end

-- Whether the entry starting after byte `offset` is newer (greater) than `id`.
local function newer(feed, offset)
  for i = 1, 8 do
    local x, y = string.byte(feed, offset + i), string.byte(id, i)
    if x ~= y then return x > y end
  end
  return false
end

local changed = 0
for _, key in ipairs(KEYS) do
  local feed = redis.call('GET', key)
  if feed and action == 'push' and unfollowed(key) then
    feed = nil
  end
  if feed then
    local n = (#feed - 1) / 8
    local lo, hi = 0, n
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if newer(feed, 1 + mid * 8) then lo = mid + 1 else hi = mid end
    end
    -- lo: the first entry not newer than id, where id is or belongs.
    local found = lo < n and string.sub(feed, 2 + lo * 8, 9 + lo * 8) == id
    if action == 'push' and not found then
      local flag = string.sub(feed, 1, 1)
      local body = string.sub(feed, 2, 1 + lo * 8) .. id .. string.sub(feed, 2 + lo * 8)
      if #body > cap * 8 then
        body = string.sub(body, 1, cap * 8)
        flag = '0'
      end
      redis.call('SET', key, flag .. body, 'KEEPTTL')
      changed = changed + 1
    elseif action == 'retract' and found then
      redis.call('SET', key, string.sub(feed, 1, 1 + lo * 8) .. string.sub(feed, 10 + lo * 8), 'KEEPTTL')
      changed = changed + 1
    end
  end
end
return changed
