// Node >= 20 (ESM): read the .wasm next to this file and instantiate it synchronously.
import { readFileSync } from "node:fs";
import { initSync, __setTrackErrorClass } from "../pkg/autumn_track.js";
import { TrackError } from "./error.js";
import "./context.js"; // adds tracker.withContext(ctx)

initSync({ module: readFileSync(new URL("../pkg/autumn_track_bg.wasm", import.meta.url)) });
__setTrackErrorClass(TrackError);

export { AutumnTracker } from "../pkg/autumn_track.js";
export { TrackError, isTrackError } from "./error.js";
// The route that forwards browser trackers' events to Autumn (Node and Workers only).
export { handleTrackRequest } from "./proxy.js";
