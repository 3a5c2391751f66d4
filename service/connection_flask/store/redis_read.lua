-- Reads over the partitions: ARGV[3] "counts" -> {partitions, stored entries, live entries}
-- (live: published less than ARGV[4] = ENTRY_TTL ago); "sizes" -> name, entries, name, ...;
-- "partitions" -> the store's change index, then name, live, expired, name, ...; "index" -> the
-- change index of partition ARGV[4], or of the store if it is ""; "reset" forgets every
-- partition.
if ARGV[3] == "index" then
  counter()
  if ARGV[4] == "" then
    return redis.call("GET", INDEX)
  end
  return redis.call("GET", key(ARGV[4], "i")) or redis.call("GET", REMOVED)
end
local names = redis.call("ZRANGE", PARTS, 0, -1)
if ARGV[3] == "counts" then
  local live = 0
  local after = "(" .. score(now() - tonumber(ARGV[4]))
  for _, p in ipairs(names) do
    live = live + redis.call("ZCOUNT", key(p, "t"), after, "+inf")
  end
  return {#names, tonumber(redis.call("GET", TOTAL) or "0"), live}
end
if ARGV[3] == "partitions" then
  counter()
  local out = {redis.call("GET", INDEX)}
  local after = "(" .. score(now() - tonumber(ARGV[4]))
  for _, p in ipairs(names) do
    local live = redis.call("ZCOUNT", key(p, "t"), after, "+inf")
    out[#out + 1] = p
    out[#out + 1] = live
    out[#out + 1] = redis.call("HLEN", key(p, "e")) - live
  end
  return out
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
-- Every index grows, the partitions' that were held and the others' (changes.py).
counter()
redis.call("SET", REMOVED, redis.call("INCR", INDEX))
redis.call("PUBLISH", CHANGES, "*")
return {}
