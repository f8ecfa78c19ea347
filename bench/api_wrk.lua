-- wrk script for bench/bench_api.py: one endpoint per wrk process, every
-- connection a client of the seed's locust scenario. Set by the environment:
--   API_KIND     submit | query_1h | query_1d | device_list | analytics | anomalies
--   API_KEY      the bearer token
--   API_DEVICES  the dataset's device count: ids dev_1 .. dev_N
--   API_SITES    the dataset's site count: site-01 .. site-NN
--   API_THINK    "MIN,MAX" think time in ms between a client's requests
--                (the seed's wait_time between(1, 3): "1000,3000"); "0" for none
--   API_SEED     seeds the random choices
-- Each request picks a random device (and, for the device list, a random
-- site filter half the time); submit bodies carry the current UTC time.
-- At the end it prints one line, "WRKJSON {...}": requests, errors, latency
-- percentiles in microseconds.
local kind = os.getenv("API_KIND")
local key = os.getenv("API_KEY")
local devices = tonumber(os.getenv("API_DEVICES"))
local sites = tonumber(os.getenv("API_SITES"))
local think_min, think_max = string.match(os.getenv("API_THINK") or "0", "(%d+),(%d+)")
think_min, think_max = tonumber(think_min or 0), tonumber(think_max or 0)
math.randomseed(tonumber(os.getenv("API_SEED") or os.time()))

local headers = {["Authorization"] = "Bearer " .. key}
local post_headers = {["Authorization"] = "Bearer " .. key,
                      ["Content-Type"] = "application/json"}

local function device()
  return "dev_" .. math.random(1, devices)
end

request = function()
  if kind == "submit" then
    local body = string.format(
      '{"device_id":"%s","timestamp":"%s","data":{"flow_rate":%.2f,"pip":%.2f,"temperature":%.2f}}',
      device(), os.date("!%Y-%m-%dT%H:%M:%SZ"),
      1000 + 500 * math.random(), 2500 + 500 * math.random(), 60 + 20 * math.random())
    return wrk.format("POST", "/api/v1/telemetry", post_headers, body)
  elseif kind == "query_1h" then
    return wrk.format("GET", "/api/v1/telemetry/" .. device(), headers)
  elseif kind == "query_1d" then
    return wrk.format("GET", "/api/v1/telemetry/" .. device() .. "?start=" .. (os.time() - 86400),
                      headers)
  elseif kind == "device_list" then
    local path = "/api/v1/devices?limit=100"
    if math.random() < 0.5 then
      path = path .. string.format("&site=site-%02d", math.random(1, sites))
    end
    return wrk.format("GET", path, headers)
  elseif kind == "analytics" then
    return wrk.format("GET", "/api/v1/analytics/summary?device_id=" .. device() ..
                      "&start=" .. (os.time() - 86400), headers)
  elseif kind == "anomalies" then
    return wrk.format("GET", "/api/v1/analytics/anomalies", headers)
  end
  error("API_KIND must be submit, query_1h, query_1d, device_list, analytics or anomalies")
end

if think_max > 0 then
  delay = function()  -- ms before this connection's next request
    return math.random(think_min, think_max)
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
