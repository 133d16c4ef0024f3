-- wrk script for etcd 3.4's v3 JSON gateway: POST /v3/kv/put or /v3/kv/range on key bench/k{n},
-- n uniform in [0, 10000), with the same value bytes as kvsite.lua.
-- Usage: wrk -s bench/lua/etcd.lua URL -- put|get
local bit = require("bit")
local KEYS = 10000
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local op, bodies
local thread_count = 0

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = bit.bor(bit.lshift(a, 16), bit.lshift(b or 0, 8), c or 0)
    for j = 0, 3 do
      if j <= 1 or (j == 2 and b) or (j == 3 and c) then
        local idx = bit.band(bit.rshift(v, 18 - 6 * j), 63) + 1
        out[#out + 1] = B64:sub(idx, idx)
      else
        out[#out + 1] = "="
      end
    end
  end
  return table.concat(out)
end

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
end

function init(args)
  op = args[1] or "get"
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
  wrk.headers["Content-Type"] = "application/json"
  bodies = {}
  for n = 0, KEYS - 1 do
    local key = base64("bench/k" .. n)
    if op == "put" then
      local value = base64(string.format('{"n": %d, "pad": "xxxxxxxxxxxxxxxx"}', n))
      bodies[n] = string.format('{"key": "%s", "value": "%s"}', key, value)
    else
      bodies[n] = string.format('{"key": "%s"}', key)
    end
  end
end

function request()
  local path = op == "put" and "/v3/kv/put" or "/v3/kv/range"
  return wrk.format("POST", path, nil, bodies[math.random(0, KEYS - 1)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'KVBENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, '
      .. '"status": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end
