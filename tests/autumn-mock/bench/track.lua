-- wrk script: POST /v1/balances.track without an idempotency key (every request recorded).
-- wrk -t2 -c64 -d10s -s tests/autumn-mock/bench/track.lua http://127.0.0.1:PORT
wrk.method = "POST"
wrk.path = "/v1/balances.track"
wrk.headers["Authorization"] = "Bearer am_sk_test_bench"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["x-api-version"] = "2.3.0"
wrk.body = '{"customer_id":"cus_1","feature_id":"api_calls","value":1,"properties":{"source":"wrk"}}'
