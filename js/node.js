// Node >= 20 (ESM): read the .wasm next to this file and instantiate it synchronously.
import { readFileSync } from "node:fs";
import { initSync } from "../pkg/autumn_track.js";
import { setup } from "./recover.js"; // panic recovery; registers TrackError
import "./context.js"; // adds tracker.withContext(ctx)

initSync({ module: readFileSync(new URL("../pkg/autumn_track_bg.wasm", import.meta.url)) });
setup();

// The core tracker, plus `queue: { cloudflareQueue }` (Node and Workers only).
export { AutumnTracker } from "./cfqueue.js";
export { TrackError, isTrackError } from "./error.js";
// The route that forwards browser trackers' events to Autumn (Node and Workers only).
export { handleTrackRequest } from "./proxy.js";
// The Cloudflare Queues consumer: drains what trackers handed over into Autumn.
export { handleTrackQueue } from "./cfqueue.js";
