-- wrk script for kvsite: PUT or GET /api/v1/kv/bench/k{n}, n uniform in [0, 10000).
-- Usage: wrk -s bench/lua/kvsite.lua URL -- put|get TOKEN
local KEYS = 10000
local op, bodies
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
end

function init(args)
  op = args[1] or "get"
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
  wrk.headers["Authorization"] = "Bearer " .. (args[2] or "")
  wrk.headers["Content-Type"] = "application/json"
  bodies = {}
  for n = 0, KEYS - 1 do
    bodies[n] = string.format('{"n": %d, "pad": "xxxxxxxxxxxxxxxx"}', n)
  end
end

function request()
  local n = math.random(0, KEYS - 1)
  local path = "/api/v1/kv/bench/k" .. n
  if op == "put" then
    return wrk.format("PUT", path, nil, bodies[n])
  end
  return wrk.format("GET", path)
end

-- One machine-readable line for kv_bench.py (latency in microseconds).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'KVBENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, '
      .. '"status": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end
