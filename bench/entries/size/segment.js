// @segment/analytics-next: load + track (esbuild inlines its dynamic imports: the whole
// download, not only the first chunk).
import { AnalyticsBrowser } from "@segment/analytics-next";

const analytics = AnalyticsBrowser.load({ writeKey: "bench" });
export const track = () => analytics.track("message_sent", { value: 1 });
