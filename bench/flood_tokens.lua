-- wrk script: an attacker's flood.  Every request carries a new random
-- bearer credential of the issued form (pva_ and 64 hex digits), so that
-- no cache keyed by the token can help; BENCH_PATH chooses the route
-- (default /api/users).  At the end: how the app answered (status counts).
local path = os.getenv("BENCH_PATH") or "/api/users"
local hex = "0123456789abcdef"
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   codes = {}
   -- a seed of its own per thread
   math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
   local t = {}
   for i = 1, 64 do
      local r = math.random(1, 16)
      t[i] = hex:sub(r, r)
   end
   return wrk.format("GET", path, { ["Authorization"] = "Bearer pva_" .. table.concat(t) })
end

function response(status, headers, body)
   codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
   local total = {}
   for _, t in ipairs(threads) do
      for k, v in pairs(t:get("codes")) do
         total[k] = (total[k] or 0) + v
      end
   end
   local keys = {}
   for k in pairs(total) do table.insert(keys, k) end
   table.sort(keys)
   local parts = {}
   for _, k in ipairs(keys) do table.insert(parts, k .. "=" .. total[k]) end
   io.write("statuses: " .. table.concat(parts, " ") .. "\n")
   io.write(string.format("p50 %.2f ms, p99 %.2f ms\n",
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
