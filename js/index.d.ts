// Public types of autumn-track. The interfaces come from the wasm module's generated .d.ts.
export type {
  TrackerOptions,
  TrackInput,
  TrackInputRest,
  AutumnTrackResponse,
  AutumnBalance,
  JsonValue,
  TrackErrorCode,
  TrackerEvent,
  PendingCounts,
  DeadLetterInfo,
} from "../pkg/autumn_track.js";
import { AutumnTracker as CoreTracker } from "../pkg/autumn_track.js";
import type {
  JsonValue,
  TrackErrorCode,
  TrackInput,
  TrackInputRest,
  TrackerOptions,
  TrackResult as CoreTrackResult,
  FlushResult as CoreFlushResult,
  AutumnTracker as Tracker,
} from "../pkg/autumn_track.js";

/** How `track()` ended. */
export type TrackResult =
  | Exclude<CoreTrackResult, { status: "queued" }>
  | (Extract<CoreTrackResult, { status: "queued" }> & {
      /** With `queue: { cloudflareQueue }` only: `"cloudflare"` — handed to the Cloudflare
       *  Queue, where it survives this isolate (the `handleTrackQueue` consumer delivers it);
       *  `"memory"` — the Cloudflare Queue did not take it (`message` says why): it is kept in
       *  this isolate's memory until `flush()` hands it over or delivers it. */
      queue?: "cloudflare" | "memory";
      /** With `queue: "memory"`: why the Cloudflare Queue did not take the event. */
      message?: string;
    });

/** `flush()`'s report. */
export interface FlushResult extends CoreFlushResult {
  /** With `queue: { cloudflareQueue }`: events kept in memory that this flush handed to the
   *  Cloudflare Queue. */
  handedOver?: number;
}

/** A Cloudflare Queue producer binding (`env.TRACK_QUEUE`, `Queue` in
 *  `@cloudflare/workers-types`), or anything with the same `send`. */
export interface CloudflareQueueProducer {
  send(body: unknown, options?: { contentType?: "json" | "text" | "bytes" | "v8"; delaySeconds?: number }): Promise<unknown>;
  sendBatch?(
    messages: Iterable<{ body: unknown; contentType?: "json" | "text" | "bytes" | "v8"; delaySeconds?: number }>,
    options?: { delaySeconds?: number },
  ): Promise<unknown>;
}

/**
 * Options of `new AutumnTracker()` with durable delivery through a Cloudflare Queue (Node and
 * Workers entries only). An event that cannot be delivered now (network error, timeout, 5xx or
 * 429 past `maxRetries`) is sent to the queue — its idempotency key and exact wire body, with
 * the time of `track()` as its `timestamp` — instead of waiting in the isolate's memory, and
 * `track()` resolves `{ status: "queued", queue: "cloudflare" }`. Drain the queue with
 * {@link handleTrackQueue}. `maxRetries` defaults to 2 here (the queue retries for longer), so
 * the inline attempts fit in a Worker's `waitUntil`.
 */
export interface CloudflareQueueTrackerOptions extends Omit<TrackerOptions, "queue"> {
  queue: { cloudflareQueue: CloudflareQueueProducer };
}

/**
 * Tracks usage events for Autumn: validated, keyed once, delivered with retries, and queued
 * durably when they cannot be delivered now (IndexedDB or memory; with
 * `queue: { cloudflareQueue }`, a Cloudflare Queue).
 */
export declare class AutumnTracker extends CoreTracker {
  /** Throws `TrackError` (`invalid_options`, `secret_key_in_browser`) when the options are wrong. */
  constructor(options: TrackerOptions | CloudflareQueueTrackerOptions);
  track(input: TrackInput | TrackInputRest): Promise<TrackResult>;
  flush(): Promise<FlushResult>;
}

declare module "../pkg/autumn_track.js" {
  interface TrackerEvent {
    /** `queued` with `queue: { cloudflareQueue }`: `"cloudflare"` (handed over) or `"memory"`
     *  (the Cloudflare Queue did not take it; `message` says why). */
    queue?: "cloudflare" | "memory";
  }
}

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

/** The body of a message `AutumnTracker` sends to a Cloudflare Queue. */
export interface TrackQueueMessage {
  autumnTrack: 1;
  idempotencyKey: string;
  /** The event's exact wire body (Autumn's snake_case JSON), `timestamp` included. */
  body: string;
  /** When `track()` was called, Unix ms. */
  createdAt: number;
  /** Why it could not be delivered inline: `network_error`, `timeout`, `server_error`, `rate_limited`. */
  reason: string;
}

/** A message of a queue batch (Cloudflare's `Message`). */
export interface QueueMessageLike {
  readonly id: string;
  readonly timestamp: Date;
  readonly body: unknown;
  readonly attempts: number;
  ack(): void;
  retry(options?: { delaySeconds?: number }): void;
}

/** The batch a Worker's `queue(batch, env, ctx)` handler receives (Cloudflare's `MessageBatch`). */
export interface MessageBatchLike {
  readonly queue?: string;
  readonly messages: readonly QueueMessageLike[];
}

/** What `handleTrackQueue` sets aside for good (sent to `deadLetter`). */
export interface TrackQueueDeadLetter {
  autumnTrack: 1;
  idempotencyKey?: string;
  customerId?: string;
  /** Autumn's code (`feature_not_found`, …), `expired` (older than `maxEventAgeMs`, not
   *  resent), or `invalid_message` (not an autumn-track message). */
  code: string;
  status?: number;
  message: string;
  /** The event's wire body (for Autumn's refusals and `expired`). */
  body?: string;
  createdAt?: number;
  /** `invalid_message`: the message body as it arrived (JSON-safe, clipped). */
  original?: JsonValue;
  failedAt: number;
}

/** Options of {@link handleTrackQueue}. Only `secretKey` is required. */
export interface HandleTrackQueueOptions {
  /** Autumn secret key (`am_sk_…`). Never logged, and redacted from the report. */
  secretKey: string;
  /** Autumn's URL. Default `"https://api.useautumn.com"`. */
  baseUrl?: string;
  /** Sent as `x-api-version`. Default `"2.3.0"`. */
  apiVersion?: string;
  /** Per `batch_track` request, reading the answer included. Default 10000. */
  timeoutMs?: number;
  /** Events per `batch_track` request (1–1000, Autumn's limit). Default 1000. */
  batchSize?: number;
  /** Largest `batch_track` body. Default 1 MiB. */
  maxBatchBytes?: number;
  /** Older events (by `track()` time) are not resent — past Autumn's idempotency window a resend
   *  could count twice — but set aside as `expired`. Default 23 h. */
  maxEventAgeMs?: number;
  /** `msg.retry({ delaySeconds })` after a failure without `Retry-After`: this, doubled per
   *  attempt, up to `maxRetryDelaySeconds`. Defaults 5 and 300. */
  retryDelaySeconds?: number;
  maxRetryDelaySeconds?: number;
  /** Where events Autumn refuses for good (and messages that are not ours) go: a Queue producer
   *  binding (sent as a {@link TrackQueueDeadLetter}) or a function; the message is then acked.
   *  If that fails, or without `deadLetter`, the message is retried, so the consumer's
   *  `max_retries` and `dead_letter_queue` in wrangler.toml take it. Never acked as delivered. */
  deadLetter?: CloudflareQueueProducer | ((letter: TrackQueueDeadLetter) => void | Promise<void>);
}

/** One refusal in a {@link TrackQueueReport}. */
export interface TrackQueueRefusal {
  messageIds: string[];
  idempotencyKey?: string;
  customerId?: string;
  code: string;
  status?: number;
  message: string;
}

/** What {@link handleTrackQueue} did with a batch. Never carries the secret key. */
export interface TrackQueueReport {
  /** Messages acked because Autumn accepted their event (200/202, or already recorded). */
  delivered: number;
  /** Messages handed back with `msg.retry()` (5xx, 429, network, timeout, a refused key, or a
   *  refusal without `deadLetter`). */
  retried: number;
  /** Messages sent to `deadLetter` and acked. */
  deadLettered: number;
  /** `batch_track` requests made. */
  requests: number;
  /** Events (or messages) refused for good, with the reason. */
  refused: TrackQueueRefusal[];
  /** The last retryable failure, if any. */
  retryReason?: { code: string; status?: number; message: string };
}

/**
 * The consumer of the queue `AutumnTracker` hands events to (`queue: { cloudflareQueue }`): call
 * it from the Worker's `queue(batch, env, ctx)` handler. It sends the batch's events, with their
 * own idempotency keys, to `POST /v1/balances.batch_track` (chunks of `batchSize`, ~9 requests a
 * second per isolate), and acks a message only when Autumn accepted its event (200/202):
 * - a refused chunk (400/404/413) is halved until the refused events are alone (a batch is
 *   all-or-nothing); each refused event goes to `deadLetter`, else is retried (see there);
 * - 5xx, 429, network errors and timeouts → `msg.retry({ delaySeconds })`, honouring
 *   `Retry-After`; Autumn refusing the key (401/403) → retried, never dead-lettered;
 * - a message that is not ours, or damaged → `invalid_message`, treated as a refusal.
 * A resend after a lost answer is safe: Autumn drops an already-recorded key in a batch.
 * Resolves with a report; throws only for wrong options (Cloudflare then retries the batch).
 * Node and Workers entries only.
 */
export declare function handleTrackQueue(batch: MessageBatchLike, options: HandleTrackQueueOptions): Promise<TrackQueueReport>;
