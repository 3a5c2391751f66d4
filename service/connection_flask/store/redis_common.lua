-- Shared by every script of the Redis store (redis_scripts.py puts it before each one).
--
-- ARGV[1] is the key prefix, ARGV[2] the injected clock's reading or "" for the server's TIME,
-- so every replica stamps entries with one clock. A partition's keys carry its name in a hash
-- tag, so they share one Cluster slot:
--   {prefix}:{p}:e  HASH uid -> the entry's JSON, as the in-memory store encodes it
--   {prefix}:{p}:t  ZSET uid scored by the time of its last publish (TTL and sweeps)
--   {prefix}:{p}:x  ZSET, all scores 0, of "<bytes of data_type>:<data_type><uid>": one
--                   lexicographic index per data_type, ranged with ZRANGE BYLEX
--   {prefix}:{p}:d  HASH data_type -> entries of it (the dump page merges their heads)
--   {prefix}:{p}:r  no reclaim of its entries at MAX_ENTRIES_PER_PARTITION before this time
--   {prefix}:{p}:i  its change index (changes.py); {prefix}:{p}:s  the last sweep's TTL cutoff
-- and the registry's own keys:
--   {prefix}:parts    ZSET partition scored by the time of its last publish
--   {prefix}:entries  entries over all partitions
--   {prefix}:reclaim  no reclaim of entries at MAX_ENTRIES before this time
--   {prefix}:index    the store-wide change index; {prefix}:removed its value at the last
--                     removal of a partition (the index of every partition not held)
--   {prefix}:changes  the pub/sub channel of changes: "p<partition>", or "*" for a removal
--   {prefix}:stats    HASH of the /stats counters; {prefix}:peaks HASH partition -> peak size
local prefix = ARGV[1]
local PARTS = prefix .. ":parts"
local TOTAL = prefix .. ":entries"
local INDEX, REMOVED, CHANGES = prefix .. ":index", prefix .. ":removed", prefix .. ":changes"

local function key(p, suffix)
  return prefix .. ":{" .. p .. "}:" .. suffix
end

local function now()
  if ARGV[2] ~= "" then
    return tonumber(ARGV[2])
  end
  local t = redis.call("TIME")
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- A score as Redis reads it: "..". would format a number with 14 digits and lose precision.
local function score(x)
  return string.format("%.17g", x)
end

-- The change counter, started at the wall clock in microseconds (changes.py): a Redis that
-- restarts empty starts above every index it gave before.
local function counter()
  if redis.call("EXISTS", INDEX) == 0 then
    local t = redis.call("TIME")
    local start = t[1] .. string.format("%06d", tonumber(t[2]))
    redis.call("SET", INDEX, start)
    redis.call("SET", REMOVED, start)
  end
end

-- A change of partition p's content: it takes the next index, and waits on it wake. The
-- message carries the index, so a woken wait need not read it (redis_changes.py); "%d" because
-- Lua's own number-to-string keeps 14 digits and an index has 16.
local function changed(p)
  counter()
  local i = redis.call("INCR", INDEX)
  redis.call("SET", key(p, "i"), i)
  redis.call("PUBLISH", CHANGES, string.format("i%d ", i) .. p)
end

local function member(data_type, uid)
  return #data_type .. ":" .. data_type .. uid
end

local function index(p, data_type, uid)
  redis.call("ZADD", key(p, "x"), 0, member(data_type, uid))
  redis.call("HINCRBY", key(p, "d"), data_type, 1)
end

local function unindex(p, data_type, uid)
  redis.call("ZREM", key(p, "x"), member(data_type, uid))
  if redis.call("HINCRBY", key(p, "d"), data_type, -1) <= 0 then
    redis.call("HDEL", key(p, "d"), data_type)
  end
end

-- The data_type an entry's JSON names: read back only when an entry moves or goes.
local function data_type_of(json)
  return cjson.decode(json).data_type
end

-- Remove a partition whole; returns the entries it held.
local function drop(p)
  local held = redis.call("HLEN", key(p, "e"))
  redis.call("UNLINK", key(p, "e"), key(p, "t"), key(p, "x"), key(p, "d"), key(p, "r"))
  redis.call("UNLINK", key(p, "i"), key(p, "s"))
  redis.call("ZREM", PARTS, p)
  redis.call("DECRBY", TOTAL, held)
  -- Every partition not held now has this index: its waits wake (they all check again).
  counter()
  redis.call("SET", REMOVED, redis.call("INCR", INDEX))
  redis.call("PUBLISH", CHANGES, "*")
  return held
end

-- Remove uids a partition holds, and the partition if that empties it; returns how many.
local function remove(p, uids)
  if #uids == 0 then
    return 0
  end
  local entries = key(p, "e")
  for _, uid in ipairs(uids) do
    unindex(p, data_type_of(redis.call("HGET", entries, uid)), uid)
    redis.call("HDEL", entries, uid)
  end
  for i = 1, #uids, 1000 do
    redis.call("ZREM", key(p, "t"), unpack(uids, i, math.min(i + 999, #uids)))
  end
  redis.call("DECRBY", TOTAL, #uids)
  if redis.call("HLEN", entries) == 0 then
    drop(p)
  else
    changed(p)
  end
  return #uids
end
