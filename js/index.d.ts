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
import type { TrackErrorCode, TrackInput, TrackInputRest, TrackResult, FlushResult, AutumnTracker as Tracker } from "../pkg/autumn_track.js";

/** What `tracker.withContext(ctx)` returns. */
export interface ContextTracker {
  /** `track()`, registered with `ctx.waitUntil`: return your response without awaiting it and
   *  the runtime still keeps the isolate alive until the event is delivered (or, if it ends
   *  `queued`, flushed once more). */
  track(input: TrackInput | TrackInputRest): Promise<TrackResult>;
  /** `flush()`, registered with `ctx.waitUntil`. */
  flush(): Promise<FlushResult>;
  /** The tracker itself. */
  readonly tracker: Tracker;
}

declare module "../pkg/autumn_track.js" {
  interface AutumnTracker {
    /** Node and Workers entries only: a view whose `track()`/`flush()` hand their promise to
     *  `ctx.waitUntil` (Cloudflare's `ExecutionContext`, or anything with `waitUntil`). */
    withContext(ctx: { waitUntil(promise: Promise<unknown>): void }): ContextTracker;
  }
}

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

/**
 * Options of {@link handleTrackRequest}. Only `secretKey` and `identify` are required.
 */
export interface HandleTrackRequestOptions {
  /** Autumn secret key (`am_sk_…`), from a secret binding or the environment. Never sent to
   *  the browser, never logged, and redacted from any answer. */
  secretKey: string;
  /** The signed-in caller's Autumn customer id, from the request's headers or cookies (don't
   *  read the body: the route reads it). `null`/`undefined`/`""` or a throw → 401. Every event
   *  is tracked for this customer: any `customer_id` the browser sent is replaced. */
  identify: (request: Request) => string | null | undefined | Promise<string | null | undefined>;
  /** Origins whose pages may call the route (CORS), e.g. `["https://app.example"]`, or `"*"`.
   *  Default: none — same-origin pages only. Requests from other origins get 403. */
  allowedOrigins?: readonly string[] | "*";
  /** Optional policy per event, after the customer override: return `true` to allow it (say,
   *  only some features, or no negative `value`); `false` or a throw → 403 `forbidden`. For
   *  a batch, every item must pass before any is sent. */
  authorize?: (
    event: TrackInputRest & Record<string, unknown>,
    context: { customerId: string; request: Request },
  ) => boolean | Promise<boolean>;
  /** Autumn's URL. Default `"https://api.useautumn.com"`. */
  baseUrl?: string;
  /** Sent to Autumn as `x-api-version`. Default `"2.3.0"`. */
  apiVersion?: string;
  /** Per upstream attempt. Default 5000. */
  timeoutMs?: number;
  /** Upstream retries inside one browser request. Default 2, so the browser is not held long:
   *  past them the route answers 503 + `Retry-After` and the browser's queue resends later
   *  with the same idempotency key. */
  maxRetries?: number;
  /** Largest request body. Default 1 MiB; larger → 413. */
  maxBodyBytes?: number;
  /** Requests per identity per window, counted in memory (per isolate or process, so a
   *  best-effort limit, not a global one); past it → 429 with `Retry-After`. */
  rateLimit?: { limit: number; windowMs: number };
  /** Only `{pathPrefix}/v1/balances.track` and `{pathPrefix}/v1/balances.batch_track` are
   *  handled (e.g. `"/api/autumn"`). Default: any path ending in those; others get 404. */
  pathPrefix?: string;
}

/**
 * The route a browser tracker (`new AutumnTracker({ baseUrl: "https://app.example/api/autumn" })`,
 * no key) talks to: a fetch handler for Cloudflare Workers and any runtime with `Request` and
 * `Response` (Node ≥ 20 behind a fetch-style router). It answers CORS preflights, checks the
 * origin, the caller (`identify`), the rate limit and the body size, tracks every event for the
 * caller's customer id with the browser's own idempotency key, and answers in the terms the
 * browser's queue acts on: 200 delivered, 409 already recorded, 503 + `Retry-After` "resend
 * later with the same key", other 4xx refused for good (Autumn's `{ code, message }`).
 * Never rejects.
 *
 * Exactly once end to end: the browser tracker always sends its event's `idempotency_key`
 * (body and `Idempotency-Key` header), and the route forwards that key unchanged, so a resend
 * after a 503 or a lost answer is a 409, not a second count. (A hand-written client that sends
 * no key gets one generated per request — its own retries are then not deduplicated.)
 *
 * A batch (`…/balances.batch_track`, how the browser drains a backlog) is validated whole
 * (one invalid item → 400, nothing sent), then forwarded one event per upstream request, 6 at a
 * time, for a per-event answer. So a batch of N costs N upstream requests: on Cloudflare's Free
 * plan (50 subrequests per request, retries included) give the browser tracker `batchSize: 16`
 * or less (each event may take `maxRetries` + 1 requests).
 *
 * Exported by the Node and Workers entries only (not in browser bundles).
 */
export declare function handleTrackRequest(request: Request, options: HandleTrackRequestOptions): Promise<Response>;
