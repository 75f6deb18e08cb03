// Cloudflare Workers (workerd): wrangler and miniflare hand a .wasm import over as a compiled
// WebAssembly.Module, which initSync instantiates without any network or eval.
import wasmModule from "../pkg/server/autumn_track_bg.wasm";
import * as g from "../pkg/server/autumn_track.js";
import { wire } from "./wire.js";
import { addWithContext } from "./context.js";
import { cloudflareQueue, handOver, unsent } from "./cfqueue.js";

g.initSync({ module: wasmModule });

/** The tracker; with `queue: { cloudflareQueue }` too (Node and Workers). */
export const AutumnTracker = addWithContext(wire(g, { cloudflareQueue, handOver, unsent }));
export { TrackError, isTrackError } from "./error.js";
// The route that forwards browser trackers' events to Autumn (Node and Workers only).
export { handleTrackRequest } from "./proxy.js";
// The Cloudflare Queues consumer: drains what trackers handed over into Autumn.
export { handleTrackQueue } from "./cfqueue.js";
