-- wrk script: POST each line of a file as a JSON body, in turn, and print a JSON summary.
-- usage: wrk -t1 -c8 -d5s -s bench/post.lua http://127.0.0.1:PORT/classify -- BODIES_FILE
-- Requests are formatted once in init(), so the load generator spends no time per request in Lua.

local requests = {}
local counter = 0

function init(args)
  local path = args[1]
  if path == nil then
    error("post.lua needs the bodies file after --")
  end
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(path) do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("POST", nil, headers, line)
    end
  end
  if #requests == 0 then
    error("no request bodies in " .. path)
  end
  -- threads start at different bodies so they do not send the same name at the same time
  counter = math.random(#requests) - 1
end

function request()
  counter = counter % #requests + 1
  return requests[counter]
end

function done(summary, latency, requests_stats)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, "errors_write": %d, ' ..
    '"errors_status": %d, "errors_timeout": %d, "latency_p50_us": %d, "latency_p99_us": %d, "latency_max_us": %d}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write, errors.status,
    errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
