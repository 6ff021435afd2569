-- Counts every response's status in wrk (each thread has its own Lua state; done() sums them),
-- so the bench can fail on a status other than the one expected (a 200 where a 307 belongs),
-- which wrk's own "Non-2xx or 3xx" count cannot see.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  for status, count in pairs(total) do
    io.write(string.format("status %d %d\n", status, count))
  end
end
