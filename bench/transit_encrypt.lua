-- wrk script: POST transit/encrypt with a fixed 9-byte plaintext
-- ("123456789", base64 below), the shape of an SSN column value.
-- Usage: wrk -s bench/transit_encrypt.lua ... $VAULT_ADDR
-- The token comes from the environment, never from a file in the tree.
local token = os.getenv("VAULT_TOKEN")
local key = os.getenv("BENCH_KEY") or "bench-key"
wrk.method = "POST"
wrk.path = "/v1/transit/encrypt/" .. key
wrk.body = '{"plaintext":"MTIzNDU2Nzg5"}'
wrk.headers["X-Vault-Token"] = token
wrk.headers["X-Vault-Request"] = "true"
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
   local s = summary.errors
   io.write(string.format("non-2xx or socket errors: %d\n",
      s.connect + s.read + s.write + s.status + s.timeout))
   io.write(string.format("p50 %.2f ms, p99 %.2f ms\n",
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
