-- bench/soak's reads: GET BENCH_PATH with BENCH_TOKEN, and every BENCH_FORGED_EVERY-th request
-- (per thread) with BENCH_FORGED (a token with a wrong signature), whose answer must be 401.
-- done() prints one line "BENCH_JSON {...}": answers by status, forged requests sent, latency (µs).

local env = os.getenv
wrk.method = "GET"
wrk.path = env("BENCH_PATH")
wrk.headers["Connection"] = "keep-alive"
local every = tonumber(env("BENCH_FORGED_EVERY") or "100")
local good = wrk.format("GET", env("BENCH_PATH"), {["Authorization"] = "Bearer " .. env("BENCH_TOKEN")})
local bad = wrk.format("GET", env("BENCH_PATH"), {["Authorization"] = "Bearer " .. env("BENCH_FORGED")})
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  forged = 0
  i = 0
end

function request()
  i = i + 1
  if i % every == 0 then
    forged = forged + 1
    return bad
  end
  return good
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local by_status, sent_forged = {}, 0
  for _, t in ipairs(threads) do
    for s, n in pairs(t:get("statuses")) do by_status[s] = (by_status[s] or 0) + n end
    sent_forged = sent_forged + t:get("forged")
  end
  local e = summary.errors
  local parts = {}
  for s, n in pairs(by_status) do table.insert(parts, string.format('"%d": %d', s, n)) end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "socket_errors": %d, "forged_sent": %d, "statuses": {%s}, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, sent_forged,
    table.concat(parts, ", "), latency:percentile(50), latency:percentile(99), latency.max))
end
