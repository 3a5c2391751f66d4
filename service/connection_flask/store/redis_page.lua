-- The dump page: ARGV[3] partition, ARGV[4] the most entries per data_type, ARGV[5] the low
-- end of the range of uids, "[" (from, inclusive) or "(" (after) then a uid, ARGV[6] a uid
-- prefix. Returns nil if the partition is unknown, else {now, uid, JSON, time, ...}: each
-- data_type's first entries in range, in uid order within a data_type (the caller merges
-- them: Lua compares strings by the server's locale, not by bytes).
local p = ARGV[3]
if not redis.call("ZSCORE", PARTS, p) then
  return false
end
local limit, low, uid_prefix = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local out = {score(now())}
for _, data_type in ipairs(redis.call("HKEYS", key(p, "d"))) do
  local head = member(data_type, "")
  local first = string.sub(low, 1, 1) .. head .. string.sub(low, 2)
  local range = {first, "(" .. head .. uid_prefix .. "\255", "BYLEX", "LIMIT", 0, limit}
  local uids = {}
  for _, m in ipairs(redis.call("ZRANGE", key(p, "x"), unpack(range))) do
    uids[#uids + 1] = string.sub(m, #head + 1)
  end
  if #uids > 0 then
    local jsons = redis.call("HMGET", key(p, "e"), unpack(uids))
    local stamps = redis.call("ZMSCORE", key(p, "t"), unpack(uids))
    for i, uid in ipairs(uids) do
      out[#out + 1] = uid
      out[#out + 1] = jsons[i]
      out[#out + 1] = stamps[i]
    end
  end
end
return out
