-- The /stats counters: ARGV[3..6] calls and seconds to add (publishes, publish seconds,
-- lookups, lookup seconds), ARGV[7] "read", "reset" (read, then start again) or "add".
-- Returns nothing for "add", else {stats field, value, ...} and {partition, peak, ...}.
local stats, peaks = prefix .. ":stats", prefix .. ":peaks"
local t = redis.call("TIME") -- wall time, whatever the store's clock: "since" is a date
local since = t[1] .. "." .. string.format("%06d", tonumber(t[2]))
redis.call("HSETNX", stats, "since", since)
local fields = {"publishes", "publish_seconds", "lookups", "lookup_seconds"}
for i, field in ipairs(fields) do
  local delta = ARGV[2 + i]
  if delta ~= "0" then
    redis.call("HINCRBYFLOAT", stats, field, delta)
  end
end
if ARGV[7] == "add" then
  return {}
end
local out = {redis.call("HGETALL", stats), redis.call("HGETALL", peaks)}
if ARGV[7] == "reset" then
  redis.call("DEL", stats, peaks)
  redis.call("HSET", stats, "since", since)
end
return out
