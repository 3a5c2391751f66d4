-- Cycle through pre-built requests, one per line of the file named by the first script argument:
--   PATH<TAB>JSON-BODY
-- Every request is a POST with Content-Type application/json. A second argument "close" adds
-- "Connection: close", so every request pays for a new TCP connection.
-- done() prints one line "BENCH_JSON {...}" that bench/run.py reads (latencies in microseconds).

local reqs, n, i = {}, 0, 0
local count = 0

function setup(thread)
  count = count + 1
  thread:set("tid", count)
end

function init(args)
  local close = args[2] == "close"
  for line in io.lines(args[1]) do
    local path, body = line:match("^([^\t]+)\t(.*)$")
    if path then
      local headers = { ["Content-Type"] = "application/json" }
      if close then headers["Connection"] = "close" end
      n = n + 1
      reqs[n] = wrk.format("POST", path, headers, body)
    end
  end
  assert(n > 0, "no requests in " .. tostring(args[1]))
  -- Threads start at different places in the list so they do not send the same request.
  i = math.floor(((tid or 1) - 1) * n / 2) % n
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,' ..
    '"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
