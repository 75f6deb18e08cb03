// autumn-js in a Worker: a client and the first track() answered by the mock. (It parses the
// answer with API 2.4's schema, which the mock's 2.3 answer fails after recording the event:
// ResponseValidationError counts as delivered; the runner checks the mock's count.)
import { Autumn } from "autumn-js";

let autumn;
export default {
  async fetch(request, env) {
    autumn ??= new Autumn({ secretKey: env.AUTUMN_SECRET_KEY, serverURL: env.MOCK_URL });
    try {
      const r = await autumn.track({ customerId: "bench_cold", featureId: "api_calls", value: 1 });
      return new Response(r?.customerId ? "delivered" : "fake_success", { status: r?.customerId ? 200 : 500 });
    } catch (e) {
      if (e?.name === "ResponseValidationError") return new Response("delivered");
      return new Response(String(e), { status: 500 });
    }
  },
};
