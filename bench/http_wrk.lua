-- wrk script for bench/bench_http.py. The request comes from the environment:
--   WRK_METHOD (default GET), WRK_BODY (a JSON body, sent with
--   Content-Type: application/json). At the end it prints one line,
--   "WRKJSON {...}": request count, duration, errors and latency percentiles
--   in microseconds.
--   WRK_METHOD=POST WRK_BODY='{"a":1}' wrk -t2 -c50 -d10s -s bench/http_wrk.lua URL
wrk.method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
