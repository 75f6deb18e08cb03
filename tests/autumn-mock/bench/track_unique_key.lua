-- wrk script: POST /v1/balances.track with a unique idempotency_key per request
-- (thread id + counter + run nonce), so every request is claimed and recorded, none 409.
-- wrk -t2 -c64 -d10s -s tests/autumn-mock/bench/track_unique_key.lua http://127.0.0.1:PORT
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  nonce = tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9))
  headers = {
    ["Authorization"] = "Bearer am_sk_test_bench",
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
    ["x-api-version"] = "2.3.0",
  }
end

function request()
  counter = counter + 1
  local body = '{"customer_id":"cus_1","feature_id":"api_calls","value":1,"idempotency_key":"wrk-'
    .. nonce .. "-" .. id .. "-" .. counter .. '"}'
  return wrk.format("POST", "/v1/balances.track", headers, body)
end

-- No response() hook on purpose (it slows wrk down): wrk itself reports
-- "Non-2xx or 3xx responses" -- a 409 there would mean a key collision.
