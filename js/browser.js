// Browsers and bundlers (Vite, webpack, esbuild): fetch and compile the .wasm next to this file.
// Named imports, not the namespace: the glue's `initSync` (Node's and Workers' way) is then left
// out of a browser's bundle.
import init, { Engine, __setTrackErrorClass } from "../pkg/autumn_track.js";
import { wire } from "./wire.js";

await init({ module_or_path: new URL("../pkg/autumn_track_bg.wasm", import.meta.url) });

export const AutumnTracker = wire({ Engine, __setTrackErrorClass });
export { TrackError, isTrackError } from "./error.js";
