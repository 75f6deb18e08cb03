// Node >= 20 (ESM): read the .wasm next to this file and instantiate it synchronously.
import { readFileSync } from "node:fs";
import * as g from "../pkg/server/autumn_track.js";
import { wire } from "./wire.js";
import { addWithContext } from "./context.js";
import { openServerStore, serverQueue } from "./sqlstore.js";
import { cloudflareQueue, handOver, unsent } from "./cfqueue.js";

g.initSync({ module: readFileSync(new URL("../pkg/server/autumn_track_bg.wasm", import.meta.url)) });

/** The tracker; with `queue: { cloudflareQueue }` too (Node and Workers), and durable server
 *  queues: `queue: { sqlite: "./queue.db" }`, `queue: { postgres: pool }` (Node). */
export const AutumnTracker = addWithContext(wire(g, { openServerStore, serverQueue, cloudflareQueue, handOver, unsent }));
export { TrackError, isTrackError } from "./error.js";
// The route that forwards browser trackers' events to Autumn (Node and Workers only).
export { handleTrackRequest } from "./proxy.js";
// The Cloudflare Queues consumer: drains what trackers handed over into Autumn.
export { handleTrackQueue } from "./cfqueue.js";
