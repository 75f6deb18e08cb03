// Cloudflare Workers (workerd): wrangler and miniflare hand a .wasm import over as a compiled
// WebAssembly.Module, which initSync instantiates without any network or eval.
import wasmModule from "../pkg/autumn_track_bg.wasm";
import { initSync } from "../pkg/autumn_track.js";
import { setup } from "./recover.js"; // panic recovery; registers TrackError
import "./context.js"; // adds tracker.withContext(ctx)

initSync({ module: wasmModule });
setup();

// The core tracker, plus `queue: { cloudflareQueue }` (Node and Workers only).
export { AutumnTracker } from "./cfqueue.js";
export { TrackError, isTrackError } from "./error.js";
// The route that forwards browser trackers' events to Autumn (Node and Workers only).
export { handleTrackRequest } from "./proxy.js";
// The Cloudflare Queues consumer: drains what trackers handed over into Autumn.
export { handleTrackQueue } from "./cfqueue.js";
