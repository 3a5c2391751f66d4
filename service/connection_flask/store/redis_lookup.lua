-- Lookup: ARGV[3] partition, ARGV[4] ENTRY_TTL, ARGV[5..6] the BYLEX range of index members,
-- ARGV[7] the length of the data_type's member head, ARGV[8] the least tail a `prefix.*`-like
-- pattern takes (-1: no tail rule), ARGV[9] the prefix's length in bytes, ARGV[10] "1" to
-- return each uid before its JSON (for a regex the caller runs), ARGV[11] the most index
-- members to read. Returns nil if the partition is unknown, else the member to go on after
-- ("" once the range is done: a big answer comes in several calls, so that no call holds
-- Redis for long), then the live entries' JSON in uid order.
local p = ARGV[3]
if not redis.call("ZSCORE", PARTS, p) then
  return false
end
local most = tonumber(ARGV[11])
local members = redis.call("ZRANGE", key(p, "x"), ARGV[5], ARGV[6], "BYLEX", "LIMIT", 0, most)
local out = {#members == most and members[#members] or ""}
if #members == 0 then
  return out
end
local cutoff = now() - tonumber(ARGV[4])
local head, min_tail, plen = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local with_uids = ARGV[10] == "1"
for i = 1, #members, 1000 do
  local uids = {}
  for j = i, math.min(i + 999, #members) do
    local uid = string.sub(members[j], head + 1)
    -- `prefix.*` and `prefix.+`: the tail is long enough and holds no newline (`.` skips it).
    if min_tail < 0 or (#uid - plen >= min_tail and not string.find(uid, "\n", plen + 1, true)) then
      uids[#uids + 1] = uid
    end
  end
  if #uids > 0 then
    local stamps = redis.call("ZMSCORE", key(p, "t"), unpack(uids))
    local jsons = redis.call("HMGET", key(p, "e"), unpack(uids))
    for k = 1, #uids do
      if stamps[k] and tonumber(stamps[k]) > cutoff then
        if with_uids then
          out[#out + 1] = uids[k]
        end
        out[#out + 1] = jsons[k]
      end
    end
  end
end
return out
