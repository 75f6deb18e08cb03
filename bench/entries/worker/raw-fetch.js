// The floor plus one round trip: a Worker that POSTs one hand-written track body to the mock.
export default {
  async fetch(request, env) {
    const r = await fetch(`${env.MOCK_URL}/v1/balances.track`, {
      method: "POST",
      headers: { authorization: `Bearer ${env.AUTUMN_SECRET_KEY}`, "content-type": "application/json", "x-api-version": "2.3.0" },
      body: JSON.stringify({ customer_id: "bench_cold", feature_id: "api_calls", value: 1, idempotency_key: crypto.randomUUID() }),
    });
    await r.text();
    return new Response(r.ok ? "delivered" : `HTTP ${r.status}`, { status: r.ok ? 200 : 500 });
  },
};
