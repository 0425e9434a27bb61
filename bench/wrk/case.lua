-- One benchmark case for wrk, configured by environment variables (set by bench/run):
--   BENCH_METHOD, BENCH_PATH, BENCH_BODY, BENCH_CONTENT_TYPE, BENCH_TOKEN (a bearer token),
--   BENCH_EXPECT     the status every answer should have (default 200),
--   BENCH_COUNT=1    count statuses per response (a Lua callback per answer, which costs the
--                    generator some throughput: used only where an answer other than 2xx is
--                    expected or statuses must be told apart, i.e. the forged token and logins),
--   BENCH_DELAY_MS   pause before each request on a connection (0: closed loop, no pause),
--   BENCH_BODY_TEMPLATE, BENCH_VARIANTS   the body of request i is the template with "{i}"
--                    replaced by i mod BENCH_VARIANTS (the login flood spreads over accounts).
--   BENCH_FORGED, BENCH_FORGED_EVERY   every BENCH_FORGED_EVERY-th request (per thread) carries
--                    the bearer token BENCH_FORGED instead (bench/soak's 1% of forged tokens).
-- done() prints one line "BENCH_JSON {...}" with counts, rate and latency percentiles (µs).

local env = os.getenv
wrk.method = env("BENCH_METHOD") or "GET"
wrk.path = env("BENCH_PATH") or "/"
wrk.body = env("BENCH_BODY")
wrk.headers["Connection"] = "keep-alive"
if env("BENCH_CONTENT_TYPE") then wrk.headers["Content-Type"] = env("BENCH_CONTENT_TYPE") end
if env("BENCH_TOKEN") then wrk.headers["Authorization"] = "Bearer " .. env("BENCH_TOKEN") end

local expect = tonumber(env("BENCH_EXPECT") or "200")
local delay_ms = tonumber(env("BENCH_DELAY_MS") or "0")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  retry_after = 0
  forged = 0
end

if delay_ms > 0 then
  function delay() return delay_ms end
end

local template = env("BENCH_BODY_TEMPLATE")
if template then
  local variants, i = tonumber(env("BENCH_VARIANTS") or "1"), 0
  function request()
    i = i + 1
    local body = template:gsub("{i}", tostring(i % variants))
    return wrk.format(nil, nil, nil, body)
  end
end

if env("BENCH_FORGED") then
  local every, i = tonumber(env("BENCH_FORGED_EVERY") or "100"), 0
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["Authorization"] = "Bearer " .. env("BENCH_FORGED")
  local bad = wrk.format(nil, nil, headers)
  local good = wrk.format()
  function request()
    i = i + 1
    if i % every == 0 then
      forged = forged + 1
      return bad
    end
    return good
  end
end

if env("BENCH_COUNT") == "1" then
  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    if headers["retry-after"] or headers["Retry-After"] then retry_after = retry_after + 1 end
  end
end

function done(summary, latency, requests)
  local counted = env("BENCH_COUNT") == "1"
  local by_status, ra, sent_forged = {}, 0, 0
  for _, t in ipairs(threads) do
    if counted then
      for s, n in pairs(t:get("statuses")) do by_status[s] = (by_status[s] or 0) + n end
      ra = ra + t:get("retry_after")
    end
    sent_forged = sent_forged + t:get("forged")
  end
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  local unexpected
  if counted then
    unexpected = summary.requests - (by_status[expect] or 0)
  else
    unexpected = e.status -- wrk counts answers with a status above 399
  end
  local parts = {}
  for s, n in pairs(by_status) do table.insert(parts, string.format('"%d": %d', s, n)) end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "socket_errors": %d, "timeouts": %d, ' ..
    '"unexpected_status": %d, "statuses": {%s}, "retry_after": %d, "forged_sent": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, socket, e.timeout, unexpected, table.concat(parts, ", "), ra, sent_forged,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
