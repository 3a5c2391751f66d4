-- Reads over every partition: ARGV[3] "counts" -> {partitions, stored entries, live entries}
-- (live: published less than ARGV[4] = ENTRY_TTL ago); "sizes" -> name, entries, name, ...;
-- "reset" forgets every partition.
local names = redis.call("ZRANGE", PARTS, 0, -1)
if ARGV[3] == "counts" then
  local live = 0
  local after = "(" .. score(now() - tonumber(ARGV[4]))
  for _, p in ipairs(names) do
    live = live + redis.call("ZCOUNT", key(p, "t"), after, "+inf")
  end
  return {#names, tonumber(redis.call("GET", TOTAL) or "0"), live}
end
if ARGV[3] == "sizes" then
  local out = {}
  for _, p in ipairs(names) do
    out[#out + 1] = p
    out[#out + 1] = redis.call("HLEN", key(p, "e"))
  end
  return out
end
for _, p in ipairs(names) do
  drop(p)
end
redis.call("DEL", PARTS, TOTAL, prefix .. ":reclaim")
return {}
