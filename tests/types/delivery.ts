// The delivery contract as a TypeScript user meets it: the confirmation window, where a queued
// event waits and why, what an `unavailable` error says about resending, and every tracker
// event narrowed by `type`. Closed unions are checked exhaustively (a new member fails the
// `never` assignments until this file handles it).
import { AutumnTracker, TrackError, isTrackError, handleTrackRequest, handleTrackQueue } from "autumn-track";
import type {
  CloudflareQueueProducer,
  DeadLetterInfo,
  HandleTrackQueueOptions,
  HandleTrackRequestOptions,
  MessageBatchLike,
  PendingCounts,
  QueueStorage,
  QueuedReason,
  TrackErrorCode,
  TrackQueueMessage,
  TrackQueued,
  TrackerEvent,
  TrackerEventType,
} from "autumn-track";

const never = (x: never): never => {
  throw new Error(`unexpected ${String(x)}`);
};

const tracker = new AutumnTracker({ secretKey: "am_sk_test_x", timeoutMs: 10_000, confirmAfterMs: 60_000, drain: "batch" });
// Everything optional: the defaults.
new AutumnTracker();
new AutumnTracker({});
// exactOptionalPropertyTypes-style `undefined` is accepted, as the SDK skips it.
new AutumnTracker({ secretKey: undefined, headers: { "x-tenant": "t1", "x-unset": undefined } });

// @ts-expect-error confirmAfterMs is a number of milliseconds
new AutumnTracker({ confirmAfterMs: "2m" });

/** What a caller does with each reason a result can be queued for. */
export function advice(reason: QueuedReason): string {
  switch (reason) {
    case "timeout":
    case "network_error":
    case "offline":
      return "the network";
    case "unanswered":
    case "unconfirmed":
      return "an attempt may still be running at Autumn";
    case "rate_limited":
    case "server_error":
      return "Autumn";
    case "unauthorized":
    case "redirected":
    case "customer_mismatch":
      return "your setup or session";
    case "deferred":
    case "taken_over":
    case "already_queued":
      return "another copy delivers it";
    case "accepted":
      return "a server's queue delivers it";
    default:
      return never(reason);
  }
}

export function where(s: QueueStorage): number {
  switch (s) {
    case "indexeddb":
      return 0;
    case "memory":
      return 1;
    case "cloudflare":
      return 2;
    case "sqlite":
    case "postgres":
      return 3;
    default:
      return never(s);
  }
}

export async function queued(): Promise<string> {
  const r = await tracker.track({ customerId: "c", featureId: "f", entityId: undefined });
  if (r.status !== "queued") return r.idempotencyKey;
  const q: TrackQueued = r;
  const storage: QueueStorage = q.storage;
  // @ts-expect-error "off" never holds a queued event
  const off: typeof q.storage = "off";
  // @ts-expect-error reasons are a closed set
  const bogus: QueuedReason = "busy";
  void off;
  void bogus;
  return `${advice(q.reason)} ${where(storage)} ${q.message}`;
}

export function resend(e: unknown): number | null {
  if (!isTrackError(e) || e.code !== "unavailable") return null;
  // A 409 while an earlier attempt may still run: wait this long, then resend with the key.
  const wait: number | undefined = e.retryAfterMs;
  const running: true | undefined = e.unanswered;
  const key: string | undefined = e.idempotencyKey;
  void key;
  return wait ?? (running ? 120_000 : 0);
}

export function codes(e: TrackError): string {
  const c: TrackErrorCode = e.code;
  // Autumn's own codes pass through as strings.
  const autumn: TrackErrorCode = "feature_not_found";
  const sdk: TrackErrorCode[] = ["invalid_input", "invalid_options", "secret_key_in_browser", "unavailable", "http_error", "internal"];
  // @ts-expect-error the error's fields are read-only
  e.retryAfterMs = 5;
  // @ts-expect-error unanswered is only ever set to true
  const no: TrackError["unanswered"] = false;
  void no;
  return `${c} ${autumn} ${sdk.length} ${e.name}`;
}

/** Every event type, narrowed to its own fields. */
export function describe(e: TrackerEvent): string {
  switch (e.type) {
    case "queued": {
      const storage: QueueStorage = e.storage;
      return `${e.idempotencyKey} ${e.reason} ${e.message} ${storage}`;
    }
    case "delivered":
      return `${e.idempotencyKey} ${e.duplicate ? "already recorded" : "recorded"}`;
    case "retrying":
      return `${e.idempotencyKey} +${e.count - 1}: ${e.message}`;
    case "dead_letter":
      return `${e.idempotencyKey} ${e.code} ${e.status ?? "-"} ${e.message}`;
    case "evicted": {
      const why: "expired" | "queue_full" = e.reason;
      return `${e.idempotencyKey} ${why}`;
    }
    case "storage_fallback":
      // @ts-expect-error a fallback is about the queue, not one event
      void e.idempotencyKey;
      return e.message;
    default:
      return never(e);
  }
}

export function eventTypes(t: TrackerEventType): TrackerEventType {
  // @ts-expect-error event types are a closed set
  const bogus: TrackerEventType = "flushed";
  void bogus;
  return t;
}

export function queuedEvent(e: TrackerEvent): void {
  if (e.type !== "queued") return;
  // A replay handed over to the Cloudflare Queue says `retried`; `already_queued` is never an event.
  const retried: (typeof e)["reason"] = "retried";
  // @ts-expect-error no queued event for a key queued already
  const dup: (typeof e)["reason"] = "already_queued";
  void retried;
  void dup;
  // @ts-expect-error a queued event has no duplicate flag
  void e.duplicate;
}

export async function inspect(t: AutumnTracker): Promise<number> {
  const p: PendingCounts = await t.pending();
  const spilled: number = p.inMemory ?? 0;
  const letters: DeadLetterInfo[] = await t.deadLetters();
  const expired = letters.filter((d) => d.code === "expired" || d.code === "queue_full").map((d) => d.idempotencyKey);
  const revived: number = await t.retryDeadLetters(expired);
  const gone: number = await t.discard(letters.map((d) => d.idempotencyKey));
  await t.retryDeadLetters(null);
  t.addEventListener(describe);
  t.removeEventListener(describe);
  return p.queued + p.inFlight + p.deadLetters + spilled + revived + gone;
}

// ---- the route -------------------------------------------------------------------------------

const routeOptions: HandleTrackRequestOptions = {
  secretKey: "am_sk_test_x",
  // A member of several organisations may bill each of them.
  identify: async (request) => request.headers.get("x-orgs")?.split(",") ?? null,
  allowedOrigins: ["https://app.example"],
  authorize: (event, { customerId }) => event.customer_id === customerId && (event.value ?? 1) >= 0,
  rateLimit: { limit: 100, windowMs: 60_000 },
  pathPrefix: "/api/autumn",
};

export function route(request: Request): Promise<Response> {
  void handleTrackRequest(request, { secretKey: "am_sk_test_x", identify: () => "cus_1" });
  return handleTrackRequest(request, routeOptions);
}

// @ts-expect-error identify is required
void handleTrackRequest(new Request("https://x"), { secretKey: "am_sk_test_x" });
// @ts-expect-error identify returns customer ids
void handleTrackRequest(new Request("https://x"), { secretKey: "am_sk_test_x", identify: () => 42 });

// ---- the consumer ----------------------------------------------------------------------------

interface Env {
  AUTUMN_SECRET_KEY: string;
  TRACK_QUEUE: CloudflareQueueProducer;
}

export async function drain(batch: MessageBatchLike, env: Env): Promise<string> {
  const options: HandleTrackQueueOptions = {
    secretKey: env.AUTUMN_SECRET_KEY,
    // Near max_retries, an undelivered message goes back to this same queue as a copy.
    requeue: env.TRACK_QUEUE,
    maxRetries: 5,
    confirmAfterMs: 120_000,
    timeoutMs: 10_000,
    retryDelaySeconds: 5,
    maxRetryDelaySeconds: 300,
  };
  const report = await handleTrackQueue(batch, options);
  const why = report.retryReason;
  const code: string | undefined = why?.code;
  const status: number | undefined = why?.status;
  return `${report.requeued} ${report.requests} ${code} ${status} ${why?.message}`;
}

export function message(m: TrackQueueMessage): string {
  return `${m.idempotencyKey} ${m.reason} ${m.createdAt} ${m.sentAt ?? "-"} ${m.requeued ?? 0}`;
}

// @ts-expect-error requeue is required: the producer binding of the same queue
void handleTrackQueue({ messages: [] }, { secretKey: "am_sk_test_x" });
// @ts-expect-error requeue takes a producer binding
void handleTrackQueue({ messages: [] }, { secretKey: "am_sk_test_x", requeue: "TRACK_QUEUE" });
// @ts-expect-error unknown consumer option
void handleTrackQueue({ messages: [] }, { secretKey: "am_sk_test_x", requeue: { send: async () => undefined }, retries: 3 });

// ---- internals stay internal ------------------------------------------------------------------

// @ts-expect-error the wasm engine is not exported
import type { Engine } from "autumn-track";
// @ts-expect-error nor the queue consumer's core
import type { Consumer } from "autumn-track";
// @ts-expect-error nor the private input base
import type { TrackInputCommon } from "autumn-track";
export type Internals = [Engine, Consumer, TrackInputCommon];
