// Public types of autumn-track. The interfaces come from the wasm module's generated .d.ts.
export { AutumnTracker } from "../pkg/autumn_track.js";
export type {
  TrackerOptions,
  TrackInput,
  TrackInputRest,
  TrackResult,
  AutumnTrackResponse,
  AutumnBalance,
  JsonValue,
  TrackErrorCode,
} from "../pkg/autumn_track.js";
import type { TrackErrorCode } from "../pkg/autumn_track.js";

/** A failure of `new AutumnTracker()` or `track()`. */
export declare class TrackError extends Error {
  readonly name: "TrackError";
  /** Stable code: the SDK's own, or Autumn's (e.g. `feature_not_found`). */
  readonly code: TrackErrorCode;
  /** The input field or option at fault, for `invalid_input` / `invalid_options`. */
  readonly field?: string;
  /** HTTP status, when the server answered. */
  readonly status?: number;
  /** The event's idempotency key: resending with it cannot double-count. */
  readonly idempotencyKey?: string;
}

/** True for errors thrown by autumn-track. */
export declare function isTrackError(e: unknown): e is TrackError;
