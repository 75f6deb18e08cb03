// Public types of autumn-track: every entry (browser, node, workerd) resolves to this file. What
// only the Node and Workers entries export says so. The wasm glue's own .d.ts (pkg/) describes
// internals and is not part of the API.

// ---- JSON and track() input -------------------------------------------------------------------

/** Any JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue | undefined };

interface TrackInputCommon {
  /** Units used; negative credits back. A finite number. Default 1. */
  value?: number | undefined;
  /** Any JSON object, at most `maxPropertiesBytes` serialized. */
  properties?: { [key: string]: JsonValue | undefined } | undefined;
  /** Unix milliseconds when the usage happened (an integer; seconds, microseconds or more than
   *  a day ahead are refused). */
  timestamp?: number | undefined;
  /** What Autumn does when the balance runs out. */
  overageBehavior?: "cap" | "overflow" | undefined;
  /** Ask Autumn to record asynchronously (answers 202 with `balance: null`). */
  async?: boolean | undefined;
}

/** One usage event. Give exactly one of `featureId` / `eventName`. Unknown fields are an error. */
export interface TrackInput extends TrackInputCommon {
  customerId: string;
  featureId?: string | undefined;
  eventName?: string | undefined;
  entityId?: string | undefined;
  /** Leave it out and a UUID v7 is generated; give one to dedupe across your own retries. */
  idempotencyKey?: string | undefined;
}

/** The same event with Autumn's REST (snake_case) field names. */
export interface TrackInputRest extends TrackInputCommon {
  customer_id: string;
  feature_id?: string | undefined;
  event_name?: string | undefined;
  entity_id?: string | undefined;
  idempotency_key?: string | undefined;
  overage_behavior?: "cap" | "overflow" | undefined;
}

// ---- options ----------------------------------------------------------------------------------

/** A Cloudflare Queue producer binding (`env.TRACK_QUEUE`, `Queue` in
 *  `@cloudflare/workers-types`), or anything with the same `send`. */
export interface CloudflareQueueProducer {
  send(body: unknown, options?: { contentType?: "json" | "text" | "bytes" | "v8"; delaySeconds?: number }): Promise<unknown>;
  sendBatch?(
    messages: Iterable<{ body: unknown; contentType?: "json" | "text" | "bytes" | "v8"; delaySeconds?: number }>,
    options?: { delaySeconds?: number },
  ): Promise<unknown>;
}

/** A PostgreSQL pool: `new pg.Pool(…)` from the `pg` package (at least 2 connections: one
 *  holds the drain's lock while the others work). */
export interface PostgresPool {
  connect(): Promise<unknown>;
}

/** Options of `new AutumnTracker(options)`. Unknown options are an error (`invalid_options`). */
export interface TrackerOptions {
  /** Autumn secret key (`am_sk_test_…` / `am_sk_live_…`). Server runtimes only: in a browser,
   *  leave it out and point `baseUrl` at your own route that holds the key. `am_pk_…` keys are
   *  refused. */
  secretKey?: string | undefined;
  /** Default `"https://api.useautumn.com"`. An http(s) URL, or (in a browser) a path on this
   *  origin (`"/api/autumn"`) for a page talking to your backend. No query or fragment. */
  baseUrl?: string | undefined;
  /** Sent as `x-api-version` (`"2.3"` or `"2.3.0"` form). Default `"2.3.0"`. */
  apiVersion?: string | undefined;
  /** Extra headers on every request (e.g. your route's session token). `Content-Type`,
   *  `Accept`, `x-api-version` and `Idempotency-Key` are the tracker's; `Authorization` only
   *  without `secretKey`. */
  headers?: Record<string, string | undefined> | undefined;
  /** Per-attempt timeout in milliseconds, reading the answer included (1–600,000). Default
   *  5000. Above 120,000 set `confirmAfterMs` too (it must be at least this). */
  timeoutMs?: number | undefined;
  /** Retries inside one `track()` after the first attempt, for network errors, timeouts, 408,
   *  429 and 5xx (0–20). With a queue they stop after about 30 s (15 s with
   *  `queue: { cloudflareQueue }`) and the event is queued. Default 5; 2 with
   *  `queue: { cloudflareQueue }`. */
  maxRetries?: number | undefined;
  /** Largest `properties` accepted, as JSON bytes (2–1,048,576). Default 65536. */
  maxPropertiesBytes?: number | undefined;
  /** Allow a secret key in a browser. Anyone who opens the page can read it: don't. */
  dangerouslyAllowBrowser?: boolean | undefined;
  /**
   * Where events that cannot be delivered now wait:
   * - `"auto"` (default): IndexedDB where it opens, memory elsewhere (Node, Workers, private
   *   mode — reported once as `storage_fallback`);
   * - `"indexeddb"`: IndexedDB, falling back to memory (reported) when it cannot be opened;
   * - `"memory"`: this page or process only;
   * - `"off"`: no queue: `track()` rejects instead of queueing — `unavailable` (with the
   *   `idempotencyKey` to resend safely) when retries run out;
   * - `{ cloudflareQueue: env.TRACK_QUEUE }` (Workers; the browser build refuses it): an event
   *   that cannot be delivered now is sent to that Cloudflare Queue — its key and exact wire
   *   body, with the time of `track()` as its `timestamp` — and `track()` resolves
   *   `{ status: "queued", storage: "cloudflare", queue: "cloudflare" }`; if the queue does not
   *   take it, it waits in memory (`queue: "memory"`) until `flush()`. Drain the queue with
   *   {@link handleTrackQueue}.
   * - `{ sqlite: "./autumn-queue.db" }` (Node): a SQLite file (`node:sqlite`, or the
   *   `better-sqlite3` package on Node 20): `queued` means committed to disk, and the next
   *   process replays it with the same key;
   * - `{ postgres: pool }` (Node): one queue for many processes and machines, in PostgreSQL
   *   (tables created when missing; one drainer at a time per queue).
   */
  queue?:
    | "auto"
    | "indexeddb"
    | "memory"
    | "off"
    | { cloudflareQueue: CloudflareQueueProducer }
    | { sqlite: string }
    | { postgres: PostgresPool }
    | undefined;
  /** IndexedDB database name (1–128 characters); the tabs of an origin with the same name share
   *  one queue. Default `"autumn-track"`. */
  queueName?: string | undefined;
  /** Most events queued (1–1,000,000, default 10,000); the oldest beyond it become dead letters
   *  (`queue_full`, reported as `evicted`). */
  maxQueueSize?: number | undefined;
  /** Oldest event replayed, ms (1000 to 30 days; default 23 h, inside Autumn's 24 h idempotency
   *  window); older ones become dead letters (`expired`) instead of risking a double count. */
  maxEventAgeMs?: number | undefined;
  /** Events per `batch_track` request when draining a backlog (1–1000, default 1000). */
  batchSize?: number | undefined;
  /** `"batch"` (default): backlogs go through `/v1/balances.batch_track`, which Autumn accepts
   *  as a whole and records asynchronously (no per-event answer). `"single"`: one
   *  `/v1/balances.track` request per event, each with its own answer. */
  drain?: "batch" | "single" | undefined;
  /** How long an attempt that got no answer may still be running at Autumn, ms (100–86,400,000,
   *  and at least `timeoutMs`). Until then a 409 for its key is not taken as proof that it was
   *  recorded (the event stays `queued`, reason `unconfirmed`), and it is not batched. Default
   *  120,000. */
  confirmAfterMs?: number | undefined;
  /** Called for every tracker event (see {@link TrackerEvent}); a listener that throws is
   *  ignored. */
  onEvent?: ((event: TrackerEvent) => void) | undefined;
}

/** Options with durable delivery through a Cloudflare Queue (see `TrackerOptions.queue`). */
export type CloudflareQueueTrackerOptions = TrackerOptions & { queue: { cloudflareQueue: CloudflareQueueProducer } };

// ---- results ----------------------------------------------------------------------------------

/** A feature balance as Autumn reports it. Unknown fields are kept. */
export interface AutumnBalance {
  feature_id?: string;
  granted?: number;
  remaining?: number;
  usage?: number;
  unlimited?: boolean;
  overage_allowed?: boolean;
  [key: string]: unknown;
}

/** Autumn's answer to a track request (200, or 202 with `balance: null`). */
export interface AutumnTrackResponse {
  customer_id: string;
  value: number;
  balance: AutumnBalance | null;
  balances?: Record<string, AutumnBalance>;
  deductions?: Array<{ feature_id: string; deducted?: number; [key: string]: unknown }>;
  entity_id?: string;
  event_name?: string;
  [key: string]: unknown;
}

/** Where a queued event waits: IndexedDB, this page's or process's memory, the Cloudflare
 *  Queue (`queue: { cloudflareQueue }`), or a server's SQLite file or PostgreSQL database. */
export type QueueStorage = "indexeddb" | "memory" | "cloudflare" | "sqlite" | "postgres";

/**
 * Why `track()` resolved `queued` (the event is kept and replayed with the same key):
 * - `timeout`, `network_error`: no answer (`network_error` also when the request never left);
 * - `unanswered`: a 5xx that is not Autumn's own (a proxy's or CDN's page, your route's
 *   `unconfirmed`): the attempt may still be running at Autumn;
 * - `unconfirmed`: a 409 while an earlier attempt of the key, which got no answer, may still be
 *   running: confirmed once `confirmAfterMs` has passed;
 * - `rate_limited` (429), `server_error` (Autumn's own 5xx, 408);
 * - `unauthorized` (401/403, or a code saying the key or settings are wrong), `redirected` (an
 *   auth layer sending an expired session to a sign-in page), `customer_mismatch` (your route
 *   refused an event for another customer than the one signed in): kept until that is fixed;
 * - `offline`: the device said it is offline, so nothing was sent;
 * - `accepted`: committed to a server's queue by the route (`handleTrackRequest` with a
 *   `queue`), which delivers it;
 * - `deferred`: the queue write took so long (the machine slept) that the replay sends it;
 * - `taken_over`: another tab took the event over while this one was suspended;
 * - `already_queued`: an event with this key is queued or being sent already; that copy is
 *   delivered (no `queued` event is emitted for this one).
 */
export type QueuedReason =
  | "timeout"
  | "network_error"
  | "unanswered"
  | "unconfirmed"
  | "rate_limited"
  | "server_error"
  | "unauthorized"
  | "redirected"
  | "customer_mismatch"
  | "offline"
  | "accepted"
  | "deferred"
  | "taken_over"
  | "already_queued";

/** Recorded (200) or accepted for recording (202). */
export interface TrackDelivered {
  status: "delivered";
  idempotencyKey: string;
  /** Requests made, retries included. */
  attempts: number;
  /** Autumn's body; `null` if it was not JSON. */
  response: AutumnTrackResponse | null;
}

/** A 409 that proves this key was already recorded (no earlier attempt of it can still be
 *  running). A success. */
export interface TrackDuplicate {
  status: "duplicate";
  idempotencyKey: string;
  attempts: number;
}

/** Kept (IndexedDB write completed, memory where that is all there is, or handed to the
 *  Cloudflare Queue); it will be delivered with the same key. */
export interface TrackQueued {
  status: "queued";
  idempotencyKey: string;
  reason: QueuedReason;
  /** What happened, for people (e.g. `HTTP 503 …`, `timeout`). */
  message: string;
  /** Where it waits now. */
  storage: QueueStorage;
  /** With `queue: { cloudflareQueue }` only: `"cloudflare"` — handed to the Cloudflare Queue,
   *  where it survives this isolate; `"memory"` — not taken by it (`message` says why, or the
   *  key was `already_queued` here): kept in this isolate's memory until `flush()`. */
  queue?: "cloudflare" | "memory";
}

/** How `track()` ended. */
export type TrackResult = TrackDelivered | TrackDuplicate | TrackQueued;

/** `flush()`'s report. */
export interface FlushResult {
  delivered: number;
  duplicates: number;
  /** Set aside as dead letters during this flush. */
  failed: number;
  /** Still queued (waiting for the network or a backoff). */
  remaining: number;
  /** With `queue: { cloudflareQueue }`, when any: events kept in memory that this flush handed
   *  to the Cloudflare Queue. */
  handedOver?: number;
}

/** `pending()`'s counts. */
export interface PendingCounts {
  /** Queued and not being sent. */
  queued: number;
  /** Being sent by this tracker, or picked for the replay pass under way. */
  inFlight: number;
  deadLetters: number;
  /** The queue's store (`"off"` with `queue: "off"` or after `close()`). */
  storage: "indexeddb" | "memory" | "off" | "sqlite" | "postgres";
  /** When any: of the queued, how many wait in memory because the store refused to write them
   *  (a full quota, say). */
  inMemory?: number;
}

/** `DeadLetterInfo.code`: Autumn's error code (`feature_not_found`, …), or the SDK's. */
export type DeadLetterCode =
  /** Older than `maxEventAgeMs`: not replayed, to never count twice. */
  | "expired"
  /** Set aside to keep `maxQueueSize`. */
  | "queue_full"
  /** A stored record that could not be read. */
  | "corrupt_record"
  /** Refused without Autumn's code (a proxy's page). */
  | "http_error"
  | (string & {});

/** An event set aside for good, with the reason. */
export interface DeadLetterInfo {
  idempotencyKey: string;
  customerId: string;
  code: DeadLetterCode;
  message: string;
  /** HTTP status, when a server refused it. */
  status?: number;
  /** When `track()` was called, Unix ms. */
  createdAt: number;
  failedAt: number;
  attempts: number;
  /** The event's wire body (snake_case); `null` if it could not be read. */
  event: Record<string, JsonValue> | null;
}

// ---- events -----------------------------------------------------------------------------------

/** `type` of a {@link TrackerEvent}. */
export type TrackerEventType = TrackerEvent["type"];

/** An event could not be delivered now and is kept (also after a replay attempt failed, when it
 *  went to the Cloudflare Queue: reason `retried`). */
export interface TrackerQueuedEvent {
  type: "queued";
  idempotencyKey: string;
  reason: Exclude<QueuedReason, "already_queued"> | "retried";
  message: string;
  storage: QueueStorage;
}

/** Delivered, by `track()` or a replay. */
export interface TrackerDeliveredEvent {
  type: "delivered";
  idempotencyKey: string;
  /** The server already had this key (a proven 409). */
  duplicate: boolean;
}

/** A replay request failed; its events stay queued and are retried later. */
export interface TrackerRetryingEvent {
  type: "retrying";
  /** The first event the request carried. */
  idempotencyKey: string;
  /** How many events the request carried. */
  count: number;
  /** What happened (`HTTP 503 …`, `timeout`, `network error: …`). */
  message: string;
}

/** An event set aside for good during a replay (see `deadLetters()`). */
export interface TrackerDeadLetterEvent {
  type: "dead_letter";
  idempotencyKey: string;
  /** Autumn's code, `http_error`, or `corrupt_record`. */
  code: string;
  message: string;
  /** The HTTP status of the refusal. */
  status?: number;
}

/** An event moved to the dead letters by the queue itself. */
export interface TrackerEvictedEvent {
  type: "evicted";
  idempotencyKey: string;
  /** Older than `maxEventAgeMs`, or beyond `maxQueueSize`. */
  reason: "expired" | "queue_full";
}

/** The queue asked for could not be used: events wait in memory (reported once). */
export interface TrackerStorageFallbackEvent {
  type: "storage_fallback";
  message: string;
}

/** What the tracker reports through `onEvent` / `addEventListener`. Never carries the secret key. */
export type TrackerEvent =
  | TrackerQueuedEvent
  | TrackerDeliveredEvent
  | TrackerRetryingEvent
  | TrackerDeadLetterEvent
  | TrackerEvictedEvent
  | TrackerStorageFallbackEvent;

// ---- the tracker ------------------------------------------------------------------------------

/** What a Worker's fetch handler gets as `ctx` (Cloudflare's `ExecutionContext`), or anything
 *  with `waitUntil`. */
export interface WaitUntilContext {
  waitUntil(promise: Promise<unknown>): void;
}

/** What `tracker.withContext(ctx)` returns. */
export interface ContextTracker {
  /** `track()`, registered with `ctx.waitUntil`: return your response without awaiting it and
   *  the runtime still keeps the isolate alive until the event is delivered (or, if it ends
   *  queued in memory, flushed once more). */
  track(input: TrackInput | TrackInputRest): Promise<TrackResult>;
  /** `flush()`, registered with `ctx.waitUntil`. */
  flush(): Promise<FlushResult>;
  /** The tracker itself. */
  readonly tracker: AutumnTracker;
}

/**
 * Tracks usage events for Autumn: validated, keyed once, delivered with retries, and queued
 * durably when they cannot be delivered now (IndexedDB or memory; with
 * `queue: { cloudflareQueue }`, a Cloudflare Queue).
 */
export declare class AutumnTracker {
  /**
   * Throws `TrackError` (`invalid_options`, `secret_key_in_browser`) when the options are wrong.
   * With a queue, opens it in the background and replays what an earlier page or process left
   * there.
   */
  constructor(options?: TrackerOptions);
  /**
   * Records one usage event. Validates it (rejecting with `TrackError` `invalid_input` before
   * anything is sent), gives it an idempotency key, writes it to the queue, and delivers it,
   * retrying with the same key. Resolves `delivered` or `duplicate`, or `queued` once the event
   * is stored when it cannot be delivered now. Rejects with `TrackError` carrying Autumn's code
   * (or `http_error`) when the event is refused for good; when nothing can keep it
   * (`queue: "off"`, after `close()`), with `unavailable` and the `idempotencyKey` to resend.
   */
  track(input: TrackInput | TrackInputRest): Promise<TrackResult>;
  /**
   * Validates `input` exactly as `track()` does, without sending or queueing anything. Returns
   * the event as Autumn's snake_case body (with its idempotency key, generated when absent);
   * throws `TrackError` `invalid_input` naming the field.
   */
  validate(input: TrackInput | TrackInputRest): Record<string, JsonValue>;
  /** Delivers everything queued now, backoff or not (joining a drain already running) — but
   *  not an event waiting out `confirmAfterMs` — and resolves with what it did and how many
   *  events remain queued. Without a queue (or after `close()`), all zeros. */
  flush(): Promise<FlushResult>;
  /** Counts of queued, in-flight and dead-lettered events, and where they are stored. */
  pending(): Promise<PendingCounts>;
  /** Events Autumn refused for good, or the queue had to set aside, with the reason. */
  deadLetters(): Promise<DeadLetterInfo[]>;
  /** Deletes these dead letters (by idempotency key). Resolves with how many went; rejects
   *  with `invalid_input` (field `keys`) unless given an array of strings. */
  discard(keys: readonly string[]): Promise<number>;
  /** Puts dead letters (all, or these keys) back in the queue with their original keys, and
   *  starts a drain. Resolves with how many were put back. */
  retryDeadLetters(keys?: readonly string[] | null): Promise<number>;
  /** Calls `listener` for every tracker event. */
  addEventListener(listener: (event: TrackerEvent) => void): void;
  /** Removes a listener added with `addEventListener` (or given as `onEvent`). */
  removeEventListener(listener: (event: TrackerEvent) => void): void;
  /** Stops timers and listeners and releases the database; queued events stay stored for the
   *  next tracker. A `track()` after it is sent without a queue. */
  close(): void;
  /** Node and Workers entries only: a view whose `track()`/`flush()` hand their promise to
   *  `ctx.waitUntil`. Throws `TypeError` without a `waitUntil`. */
  withContext(ctx: WaitUntilContext): ContextTracker;
}

// ---- errors -----------------------------------------------------------------------------------

/** `TrackError.code`: the SDK's own codes, or Autumn's error code (e.g. `feature_not_found`). */
export type TrackErrorCode =
  /** `track()`/`validate()` input failed validation (`field` names it); nothing was sent. */
  | "invalid_input"
  /** The tracker's options are wrong (`field` names the option). */
  | "invalid_options"
  /** A secret key in a browser without `dangerouslyAllowBrowser`. */
  | "secret_key_in_browser"
  /** Not delivered and nothing could keep it; resending with `idempotencyKey` is safe (after
   *  `retryAfterMs`, when given). */
  | "unavailable"
  /** Refused without Autumn's code (a proxy's page, a redirect): it may have been recorded, so
   *  resend only with `idempotencyKey`. */
  | "http_error"
  /** autumn-track failed internally and restarted (a bug); queued events are kept. */
  | "internal"
  | (string & {});

/** A failure of `new AutumnTracker()` or of a tracker call. */
export declare class TrackError extends Error {
  constructor(message?: string);
  readonly name: "TrackError";
  /** Stable code: the SDK's own, or Autumn's (e.g. `feature_not_found`). */
  readonly code: TrackErrorCode;
  /** The input field or option at fault (`invalid_input`, `invalid_options`,
   *  `secret_key_in_browser`). */
  readonly field?: string;
  /** HTTP status, when a server answered. */
  readonly status?: number;
  /** The event's idempotency key: resending with it cannot double-count. */
  readonly idempotencyKey?: string;
  /** `unavailable`: resend no sooner than this many ms from now — a 409 arrived while an
   *  earlier attempt of the key may still be running at Autumn; then its answer is final. */
  readonly retryAfterMs?: number;
  /** `unavailable`: some attempt got no answer and may still be running at Autumn (set only
   *  when true). */
  readonly unanswered?: true;
}

/** True for errors thrown by autumn-track (also across bundles and realms). */
export declare function isTrackError(e: unknown): e is TrackError;

// ---- handleTrackRequest (Node and Workers entries) --------------------------------------------

/** Options of {@link handleTrackRequest}. Only `secretKey` and `identify` are required. */
export interface HandleTrackRequestOptions {
  /** Autumn secret key (`am_sk_…`), from a secret binding or the environment. Never sent to
   *  the browser, never logged, and redacted from any answer. */
  secretKey: string;
  /** Who the caller is, from the request's headers or cookies (don't read the body: the route
   *  reads it): the signed-in caller's Autumn customer id, or the ids they may bill (a member
   *  of several organisations). An event for another customer is refused with 403
   *  `customer_mismatch` (the browser keeps it until that customer signs in again); one
   *  without a customer is the first id's, which also keys the rate limit.
   *  `null`/`undefined`/`""`/`[]` or a throw → 401. */
  identify: (
    request: Request,
  ) => string | readonly string[] | null | undefined | Promise<string | readonly string[] | null | undefined>;
  /** Origins whose pages may call the route (CORS), e.g. `["https://app.example"]`, or `"*"`.
   *  Default: none — same-origin pages only. Requests from other origins get 403. */
  allowedOrigins?: readonly string[] | "*" | null | undefined;
  /** Optional policy per event, after the customer check: return `true` to allow it (say,
   *  only some features, or no negative `value`); anything else or a throw → 403 `forbidden`.
   *  For a batch, every item must pass before any is sent. */
  authorize?:
    | ((
        event: TrackInputRest & Record<string, unknown>,
        context: { customerId: string; request: Request },
      ) => boolean | Promise<boolean>)
    | undefined;
  /** Autumn's URL. Default `"https://api.useautumn.com"`. */
  baseUrl?: string | undefined;
  /** Sent to Autumn as `x-api-version`. Default `"2.3.0"`. */
  apiVersion?: string | undefined;
  /** Per upstream attempt, ms. Default 5000; at most 120,000 (the route's tracker keeps the
   *  default `confirmAfterMs`). */
  timeoutMs?: number | undefined;
  /** Upstream retries inside one browser request. Default 2, so the browser is not held long:
   *  past them the route answers 503 + `Retry-After` and the browser's queue resends later
   *  with the same idempotency key. */
  maxRetries?: number | undefined;
  /** Largest request body. Default 1 MiB; larger → 413. */
  maxBodyBytes?: number | undefined;
  /** Requests per identity per window, counted in memory (per isolate or process, so a
   *  best-effort limit, not a global one); past it → 429 with `Retry-After`. */
  rateLimit?: { limit: number; windowMs: number } | null | undefined;
  /** Only `{pathPrefix}/v1/balances.track` and `{pathPrefix}/v1/balances.batch_track` are
   *  handled (e.g. `"/api/autumn"`). Default: any path ending in those; others get 404. */
  pathPrefix?: string | undefined;
  /** Hold the events here (Node): each is committed to this queue and answered 202 then, and
   *  the route's own tracker delivers it with its key. `{ sqlite: path }` or
   *  `{ postgres: pool }`. Without it, events are forwarded as they come and Autumn's answer
   *  is passed on. */
  queue?: { sqlite: string } | { postgres: PostgresPool } | undefined;
  /** The route's queue name (its rows' `queue` column). Default `"autumn-track-route"`. */
  queueName?: string | undefined;
  /** Called for every event of the route's own tracker (its dead letters, its retries). */
  onEvent?: ((event: TrackerEvent) => void) | undefined;
}

/**
 * The route a browser tracker (`new AutumnTracker({ baseUrl: "https://app.example/api/autumn" })`,
 * no key) talks to: a fetch handler for Cloudflare Workers and any runtime with `Request` and
 * `Response` (Node ≥ 20 behind a fetch-style router). It answers CORS preflights, checks the
 * origin, the caller (`identify`), the rate limit and the body size, checks that every event is
 * for a customer the caller is, keeps the browser's idempotency key, and answers in the terms
 * the browser's queue acts on: 200 delivered, 409 already recorded, 503 + `Retry-After`
 * "resend later with the same key" (`unconfirmed` when an upstream attempt got no answer and
 * may still be running at Autumn), 401/403 "keep it", other 4xx refused for good (Autumn's
 * `{ code, message }`). A refusal of the route's own key or settings is a 502, never passed on
 * as the browser's fault. Never rejects.
 *
 * A batch (`…/balances.batch_track`, how the browser drains a backlog) is validated whole (one
 * invalid item → 400, nothing sent), then forwarded one event per upstream request, 6 at a
 * time, for a per-event answer. So a batch of N costs N upstream requests: on Cloudflare's Free
 * plan (50 subrequests per request, retries included) give the browser tracker `batchSize: 16`
 * or less.
 *
 * Exported by the Node and Workers entries only (not in browser bundles).
 */
export declare function handleTrackRequest(request: Request, options: HandleTrackRequestOptions): Promise<Response>;

// ---- handleTrackQueue (Node and Workers entries) ----------------------------------------------

/** The body of a message `AutumnTracker` sends to a Cloudflare Queue. */
export interface TrackQueueMessage {
  autumnTrack: 1;
  idempotencyKey: string;
  /** The event's exact wire body (Autumn's snake_case JSON), `timestamp` included. */
  body: string;
  /** When `track()` was called, Unix ms. */
  createdAt: number;
  /** Why it could not be delivered inline, or `retried` (handed over by a replay). */
  reason: Exclude<QueuedReason, "offline" | "accepted" | "deferred" | "taken_over" | "already_queued"> | "retried";
  /** When an attempt that got no answer was sent (the consumer waits out `confirmAfterMs`). */
  sentAt?: number;
  /** How many times the consumer re-sent it as a copy (see `requeue`). */
  requeued?: number;
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
  /** Autumn's code (`feature_not_found`, …), `http_error` (refused without Autumn's code),
   *  `expired` (older than `maxEventAgeMs`, not resent), or `invalid_message` (not an
   *  autumn-track message). */
  code: "expired" | "invalid_message" | "http_error" | (string & {});
  status?: number;
  message: string;
  /** The event's wire body (all but `invalid_message`). */
  body?: string;
  createdAt?: number;
  /** `invalid_message`: the message body as it arrived (JSON-safe, clipped). */
  original?: JsonValue;
  failedAt: number;
}

/** Options of {@link handleTrackQueue}. `secretKey` and `requeue` are required; unknown
 *  options are an error. */
export interface HandleTrackQueueOptions {
  /** Autumn secret key (`am_sk_…`). Never logged, and redacted from the report. */
  secretKey: string;
  /** The producer binding of this same queue (`env.TRACK_QUEUE`). Near `maxRetries`, a message
   *  that could not be delivered yet (5xx, 429, network, timeout, a refused key) is re-sent to
   *  it as a copy — same key, body and age — and the original acked, so an outage never moves
   *  events to the dead letter queue. */
  requeue: CloudflareQueueProducer;
  /** The consumer's `max_retries` in wrangler.toml (1–100). Default 3, Cloudflare's. */
  maxRetries?: number | undefined;
  /** Autumn's URL (http(s)). Default `"https://api.useautumn.com"`. */
  baseUrl?: string | undefined;
  /** Sent as `x-api-version`. Default `"2.3.0"`. */
  apiVersion?: string | undefined;
  /** Per `batch_track` request, reading the answer included (1–600,000). Default 10000. */
  timeoutMs?: number | undefined;
  /** How long an attempt that got no answer may still be running at Autumn, ms (`timeoutMs` to
   *  86,400,000): such an event (the producer's `sentAt`, or this consumer's timeout) is not
   *  batched or resent before it has passed. Default 120,000. */
  confirmAfterMs?: number | undefined;
  /** Events per `batch_track` request (1–1000, Autumn's limit). Default 1000. */
  batchSize?: number | undefined;
  /** Largest `batch_track` body (1 KiB–100 MiB). Default 1 MiB. */
  maxBatchBytes?: number | undefined;
  /** Older events (by `track()` time) are not resent — past Autumn's idempotency window a resend
   *  could count twice — but set aside as `expired`. Default 23 h. */
  maxEventAgeMs?: number | undefined;
  /** `msg.retry({ delaySeconds })` after a failure without `Retry-After`: this, doubled per
   *  attempt, up to `maxRetryDelaySeconds` (0–43,200 each). Default 5. */
  retryDelaySeconds?: number | undefined;
  /** Default 300. */
  maxRetryDelaySeconds?: number | undefined;
  /** Where events Autumn refuses for good (and messages that are not ours) go: a Queue producer
   *  binding (sent as a {@link TrackQueueDeadLetter}) or a function; the message is then acked.
   *  If that fails, or without `deadLetter`, the message is retried, so the consumer's
   *  `max_retries` and `dead_letter_queue` in wrangler.toml take it. Never acked as delivered. */
  deadLetter?: CloudflareQueueProducer | ((letter: TrackQueueDeadLetter) => void | Promise<void>) | undefined;
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
  /** Messages acked because Autumn accepted their event (2xx, or a proven 409). */
  delivered: number;
  /** Messages handed back with `msg.retry()`. */
  retried: number;
  /** Messages re-sent to `requeue` as a copy, and acked. */
  requeued: number;
  /** Messages sent to `deadLetter` and acked. */
  deadLettered: number;
  /** `batch_track` requests made. */
  requests: number;
  /** Events (or messages) refused for good, with the reason. */
  refused: TrackQueueRefusal[];
  /** The last request that did not succeed: its status (and Autumn's code) for an answer, or
   *  `timeout` / `network_error`. */
  retryReason?: { code?: string; status?: number; message: string };
}

/**
 * The consumer of the queue `AutumnTracker` hands events to (`queue: { cloudflareQueue }`): call
 * it from the Worker's `queue(batch, env, ctx)` handler. It sends the batch's events, with their
 * own idempotency keys, to `POST /v1/balances.batch_track` (chunks of `batchSize`, ~9 requests a
 * second per isolate), and acks a message only when Autumn accepted its event:
 * - a refused chunk is halved until the refused events are alone (a batch is all-or-nothing);
 *   each refused event goes to `deadLetter`, else is retried (see there);
 * - 5xx, 429, network errors, timeouts, a refused key (401/403) and redirects →
 *   `msg.retry({ delaySeconds })`, honouring `Retry-After`; near `maxRetries`, a copy to
 *   `requeue` instead, so they never reach the dead letter queue;
 * - an event whose earlier attempt got no answer waits out `confirmAfterMs` first;
 * - a message that is not ours, or damaged → `invalid_message`, treated as a refusal.
 * Resolves with a report; rejects (`TypeError`) only for wrong options (Cloudflare then retries
 * the batch). Node and Workers entries only.
 */
export declare function handleTrackQueue(batch: MessageBatchLike, options: HandleTrackQueueOptions): Promise<TrackQueueReport>;

export {};
