// Cloudflare Workers (workerd): wrangler and miniflare hand a .wasm import over as a compiled
// WebAssembly.Module, which initSync instantiates without any network or eval.
import wasmModule from "../pkg/autumn_track_bg.wasm";
import { initSync, __setTrackErrorClass } from "../pkg/autumn_track.js";
import { TrackError } from "./error.js";
import "./context.js"; // adds tracker.withContext(ctx)

initSync({ module: wasmModule });
__setTrackErrorClass(TrackError);

export { AutumnTracker } from "../pkg/autumn_track.js";
export { TrackError, isTrackError } from "./error.js";
// The route that forwards browser trackers' events to Autumn (Node and Workers only).
export { handleTrackRequest } from "./proxy.js";
