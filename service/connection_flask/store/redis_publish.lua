-- Publish: ARGV[3] partition, ARGV[4..6] MAX_PARTITIONS, MAX_ENTRIES_PER_PARTITION, MAX_ENTRIES
-- (0: none), ARGV[7] ENTRY_TTL, then uid, data_type, JSON for each connection. All stored, or none: returns {0}
-- once stored, or {limit, count} for the first limit (1, 2, 3 in that order) it would break.
local p = ARGV[3]
local max_parts, max_size, max_total = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local entries, stamps = key(p, "e"), key(p, "t")
local ttl = tonumber(ARGV[7])
local first = 8
local count = (#ARGV - first + 1) / 3

local held = redis.call("ZSCORE", PARTS, p)
local parts = redis.call("ZCARD", PARTS)
if not held and max_parts > 0 and parts >= max_parts then
  return {1, parts}
end
local size = redis.call("HLEN", entries)
local total = tonumber(redis.call("GET", TOTAL) or "0")
-- Counting the new uids costs a lookup each; skip it while even "all new" fits.
if (max_size > 0 and size + count > max_size) or (max_total > 0 and total + count > max_total) then
  local seen, fresh = {}, 0
  for i = first, #ARGV, 3 do
    local uid = ARGV[i]
    if not seen[uid] then
      seen[uid] = true
      if redis.call("HEXISTS", entries, uid) == 0 then
        fresh = fresh + 1
      end
    end
  end
  if max_size > 0 and size + fresh > max_size then
    return {2, size + fresh}
  end
  if max_total > 0 and total + fresh > max_total then
    return {3, total + fresh}
  end
end

local at = now()
local t = score(at)
local fresh = 0
local scored = {}
-- A change of content (changes.py): the partition created, an entry added, replaced or made
-- live again; an identical republish within the TTL only refreshes times.
local change = not held
for i = first, #ARGV, 3 do
  local uid, data_type, json = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local old = redis.call("HGET", entries, uid)
  if old == json then -- republished unchanged: only its time, unless it had expired
    if not change and tonumber(redis.call("ZSCORE", stamps, uid)) <= at - ttl then
      change = true
    end
  else
    change = true
    redis.call("HSET", entries, uid, json)
    if not old then
      fresh = fresh + 1
      index(p, data_type, uid)
    else
      local was = data_type_of(old)
      if was ~= data_type then
        unindex(p, was, uid)
        index(p, data_type, uid)
      end
    end
  end
  scored[#scored + 1] = t
  scored[#scored + 1] = uid
end
for i = 1, #scored, 2000 do
  redis.call("ZADD", stamps, unpack(scored, i, math.min(i + 1999, #scored)))
end
redis.call("ZADD", PARTS, t, p)
redis.call("INCRBY", TOTAL, fresh)
if change then
  changed(p)
end

-- The statistics page's peaks, as the in-memory store notes them.
local stats, peaks = prefix .. ":stats", prefix .. ":peaks"
if not held then
  parts = parts + 1
end
if parts > tonumber(redis.call("HGET", stats, "max_partitions") or "0") then
  redis.call("HSET", stats, "max_partitions", parts)
end
size = size + fresh
local peak = tonumber(redis.call("HGET", peaks, p) or "0")
if size > peak then
  -- Past twice the live count, forget the peaks of partitions that are gone.
  if peak == 0 and redis.call("HLEN", peaks) >= 2 * parts + 64 then
    for _, name in ipairs(redis.call("HKEYS", peaks)) do
      if not redis.call("ZSCORE", PARTS, name) then
        redis.call("HDEL", peaks, name)
      end
    end
  end
  redis.call("HSET", peaks, p, size)
end
return {0}
