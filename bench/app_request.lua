-- wrk script for the app: APP_TOKEN (environment) as the bearer credential;
-- BENCH_METHOD, BENCH_PATH and BENCH_BODY choose the request.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.path = os.getenv("BENCH_PATH") or "/health"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("APP_TOKEN") or "")
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
   local s = summary.errors
   io.write(string.format("non-2xx or socket errors: %d\n",
      s.connect + s.read + s.write + s.status + s.timeout))
   io.write(string.format("p50 %.2f ms, p99 %.2f ms\n",
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
