// Browsers and bundlers (Vite, webpack, esbuild): fetch and compile the .wasm next to this file.
import init, { __setTrackErrorClass } from "../pkg/autumn_track.js";
import { TrackError } from "./error.js";

await init({ module_or_path: new URL("../pkg/autumn_track_bg.wasm", import.meta.url) });
__setTrackErrorClass(TrackError);

export { AutumnTracker } from "../pkg/autumn_track.js";
export { TrackError, isTrackError } from "./error.js";
