// autumn-track in a Worker: the package's workerd entry (wasm compiled by workerd as a module
// rule, instantiated at module load), a tracker, and the first track() answered by the mock.
import { AutumnTracker } from "autumn-track";

let tracker;
export default {
  async fetch(request, env) {
    tracker ??= new AutumnTracker({ secretKey: env.AUTUMN_SECRET_KEY, baseUrl: env.MOCK_URL });
    const r = await tracker.track({ customerId: "bench_cold", featureId: "api_calls", value: 1 });
    return new Response(r.status, { status: r.status === "delivered" ? 200 : 500 });
  },
};
