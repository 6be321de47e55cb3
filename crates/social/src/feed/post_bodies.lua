-- Writes post bodies (KEYS[i] gets ARGV[i + 1]) for ARGV[1] seconds, never going back a
-- version. A value is the post's version (4 bytes, big-endian) and, unless the post changed
-- and must be read again, its author and text; an empty value marks a deleted post.
-- * A deletion always wins, and a deleted post stays deleted (ids are never reused).
-- * Otherwise a value replaces what is there only if its version is the same or newer: a
--   reader that loaded the text before an edit cannot write it back over the edit's mark.
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  local value = ARGV[i + 1]
  local write
  if #value == 0 then
    write = true
  else
    local current = redis.call('GET', key)
    if not current then
      write = true
    elseif #current < 4 then
      write = false
    else
      write = struct.unpack('>i4', current) <= struct.unpack('>i4', value)
    end
  end
  if write then
    redis.call('SET', key, value, 'EX', ttl)
  end
end
return 0
