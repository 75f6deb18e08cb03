// Browsers and bundlers (Vite, webpack, esbuild): fetch and compile the .wasm next to this file.
import init from "../pkg/autumn_track.js";
import { setup } from "./recover.js";

await init({ module_or_path: new URL("../pkg/autumn_track_bg.wasm", import.meta.url) });
setup();

export { AutumnTracker } from "./recover.js";
export { TrackError, isTrackError } from "./error.js";
