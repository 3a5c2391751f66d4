-- Remove what expired more than a grace ago: ARGV[3] ENTRY_TTL, ARGV[4] the grace, ARGV[5] the
-- most entries and partitions to look at, ARGV[6] a ZSCAN cursor over the partitions, ARGV[7]
-- "0" to drop only partitions expired whole, ARGV[8] one partition to visit instead of a scan,
-- ARGV[9] seconds before the next walk of the same scope may remove entries ("0": no such rule;
-- a client held at a limit must not make every publish walk the store).
-- Returns {entries removed, the cursor to go on from, 1 when the walk is done, entries and
-- partitions looked at}.
local budget, cursor, entries, only = tonumber(ARGV[5]), ARGV[6], ARGV[7] == "1", ARGV[8]
if only ~= "" and not redis.call("ZSCORE", PARTS, only) then
  return {0, "0", 1, 0}
end
local t = now()
local live = t - tonumber(ARGV[3])
local cutoff = live - tonumber(ARGV[4])
local every = tonumber(ARGV[9])
if every > 0 then
  local due = only == "" and prefix .. ":reclaim" or key(only, "r")
  local next_walk = redis.call("GET", due)
  if next_walk and t < tonumber(next_walk) then
    return {0, "0", 1, 0}
  end
  redis.call("SET", due, score(t + every))
end
local names, next_cursor = {only}, "0"
if only == "" then
  local page = redis.call("ZSCAN", PARTS, cursor, "COUNT", budget)
  next_cursor, names = page[1], {}
  for i = 1, #page[2], 2 do
    names[#names + 1] = page[2][i]
  end
end
local removed, used = 0, 0
for _, p in ipairs(names) do
  local newest = redis.call("ZSCORE", PARTS, p)
  used = used + 1
  if newest and tonumber(newest) <= cutoff then
    removed = removed + drop(p) -- nothing published for TTL + grace: all of it is long expired
  elseif newest and entries then
    local room = math.max(budget - used, 1)
    local old = redis.call("ZRANGEBYSCORE", key(p, "t"), "-inf", score(cutoff), "LIMIT", 0, room)
    removed = removed + remove(p, old) -- a change, or the partition's removal
    used = used + #old
    if #old == room then
      return {removed, cursor, 0, used} -- more may have expired here: this page again
    end
    if #old == 0 then
      -- Entries that expired since the last visit are a change too (changes.py), once.
      local since = tonumber(redis.call("GET", key(p, "s")) or "")
      local from = since and math.max(since, cutoff) or cutoff
      if redis.call("ZCOUNT", key(p, "t"), "(" .. score(from), score(live)) > 0 then
        changed(p)
      end
    end
    if redis.call("ZSCORE", PARTS, p) then
      redis.call("SET", key(p, "s"), score(live))
    end
  end
end
return {removed, next_cursor, next_cursor == "0" and 1 or 0, used}
