-- wrk script for the responder figure: walks a list of requests, one "host path" per
-- line of the file named by the first script argument. Each thread starts at its own
-- place in the list. With "count" as the second argument every response's status is
-- tallied (wrk then hands each response to Lua, which costs throughput). done() prints
-- one JSON line.

local all_threads = {}

function setup(thread)
  thread:set("thread_number", #all_threads)
  table.insert(all_threads, thread)
end

function init(args)
  prepared = {}
  for line in io.lines(args[1]) do
    local host, path = line:match("^(%S+) (%S+)$")
    if host then
      prepared[#prepared + 1] = wrk.format("GET", path, { Host = host })
    end
  end
  position = (thread_number * math.floor(#prepared / 2)) % #prepared
  statuses = {}
  if args[2] == "count" then
    response = function(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
    end
  end
end

function request()
  position = position % #prepared + 1
  return prepared[position]
end

function done(summary, latency, requests)
  local counted = {}
  for _, thread in ipairs(all_threads) do
    local tally = thread:get("statuses")
    for status, count in pairs(tally or {}) do
      counted[#counted + 1] = string.format('[%d, %d]', status, count)
    end
  end
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, ' ..
    '"p99_us": %d, "statuses": [%s]}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), table.concat(counted, ", ")))
end
