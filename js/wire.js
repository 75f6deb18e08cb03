// Puts the package together once the wasm module of a runtime is instantiated (each entry does
// that its own way): the public `AutumnTracker` class over the wasm `Engine`, the stores and
// `TrackError`, with panic recovery. Other modules (the route, the queue consumer) use the
// live bindings below.
import { openStore, openMemory, exclusive, openChannel, panicked } from "./store.js";
import { bindTracker } from "./tracker.js";
import { TrackError } from "./error.js";

/** The public tracker class (set by `wire`). */
export let AutumnTracker;
/** The wasm glue's exports (set by `wire`). */
export let glue;

/** Builds the package on the initialized glue; `more`: what only a runtime has (the Node
 *  entry's SQLite and PostgreSQL queues; the Node and Workers entries' Cloudflare Queue
 *  hand-over). */
export function wire(g, more) {
  glue = g;
  AutumnTracker = bindTracker({ makeEngine: (o, env) => new g.Engine(o, env), stores: { openStore, openMemory, exclusive, openChannel, panicked, ...more }, TrackError });
  // After a panic: the error class for the fresh instance, then every tracker rebuilds itself.
  const setup = () =>
    g.__setTrackErrorClass(TrackError, () => {
      try {
        setup();
      } catch {}
      AutumnTracker.panicked();
    });
  setup();
  return AutumnTracker;
}
