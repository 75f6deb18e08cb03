// posthog-js: init + capture (its npm entry; the library decides what it lazy-loads later).
import posthog from "posthog-js";

posthog.init("phc_bench", { api_host: "/ingest", autocapture: false, capture_pageview: false, disable_session_recording: true });
export const track = () => posthog.capture("message_sent", { value: 1 });
