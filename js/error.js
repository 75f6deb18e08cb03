// The error class every failure of autumn-track is thrown as. The wasm module constructs it
// (registered by each entry point), so `instanceof TrackError` works across the package.

/** A failure of `new AutumnTracker()` or `track()`, with a stable `code`. */
export class TrackError extends Error {
  constructor(message) {
    super(message);
    this.name = "TrackError";
  }
}

/** True for errors thrown by autumn-track (also across bundles and realms). */
export function isTrackError(e) {
  return e instanceof TrackError || (e instanceof Error && e.name === "TrackError" && typeof e.code === "string");
}

/** The class, for the Rust browser suites (which bind this module as it is). */
export function errorClass() {
  return TrackError;
}
