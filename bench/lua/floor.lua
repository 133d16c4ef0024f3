-- wrk script for the floor benchmark: GET the URL's own path, or PUT to it a body of the size
-- kvsite.lua sends, with an optional bearer token.
-- Usage: wrk -s bench/lua/floor.lua URL -- [get|put] [TOKEN]
function init(args)
  if args[1] == "put" then
    wrk.method = "PUT"
    wrk.body = '{"n": 1234, "pad": "xxxxxxxxxxxxxxxx"}'
    wrk.headers["Content-Type"] = "application/json"
  end
  if args[2] and args[2] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[2]
  end
end

-- One machine-readable line for the benchmarks (latency in microseconds).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'KVBENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, '
      .. '"status": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end
