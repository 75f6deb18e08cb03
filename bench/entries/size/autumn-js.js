// autumn-js (Autumn's own SDK): just what it takes to call track().
import { Autumn } from "autumn-js";

const autumn = new Autumn({ secretKey: "am_sk_test_x", serverURL: "/api/autumn" });
export const track = () => autumn.track({ customerId: "cus_1", featureId: "messages", value: 1 });
