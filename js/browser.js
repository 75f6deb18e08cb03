// Browsers and bundlers (Vite, webpack, esbuild): fetch and compile the .wasm next to this file.
import init, * as g from "../pkg/autumn_track.js";
import { wire } from "./wire.js";

await init({ module_or_path: new URL("../pkg/autumn_track_bg.wasm", import.meta.url) });

export const AutumnTracker = wire(g);
export { TrackError, isTrackError } from "./error.js";
