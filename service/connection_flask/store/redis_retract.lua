-- Retract: ARGV[3] partition, "1" to retract it whole or "0" to retract the uids ARGV[5..].
-- Returns nil if the partition is unknown, else the uids it did not hold (none for a whole one).
local p = ARGV[3]
if not redis.call("ZSCORE", PARTS, p) then
  return false
end
if ARGV[4] == "1" then
  drop(p)
  return {}
end
local entries = key(p, "e")
local missing, found, seen = {}, {}, {}
for i = 5, #ARGV do
  local uid = ARGV[i]
  if not seen[uid] and redis.call("HEXISTS", entries, uid) == 1 then
    seen[uid] = true
    found[#found + 1] = uid
  else
    missing[#missing + 1] = uid
  end
end
remove(p, found) -- one change, or the partition's removal
-- A partition left empty goes, even one a retract of nothing it held finds empty.
if #found == 0 and redis.call("HLEN", entries) == 0 then
  drop(p)
end
return missing
