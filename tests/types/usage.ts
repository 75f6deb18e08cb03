// Compiled with `tsc --noEmit` against the published types: what a TypeScript user writes must
// type-check, and the mistakes below must not (each `@ts-expect-error` fails the build if the
// line stops being an error).
import { AutumnTracker, TrackError, isTrackError, handleTrackQueue } from "autumn-track";
import type { CloudflareQueueProducer, MessageBatchLike, TrackQueueReport, TrackQueueDeadLetter } from "autumn-track";
import type { TrackResult, TrackerOptions, AutumnTrackResponse, TrackInput } from "autumn-track";

const options: TrackerOptions = { secretKey: "am_sk_test_x", baseUrl: "http://127.0.0.1:8787", maxRetries: 3 };
const tracker = new AutumnTracker(options);

export async function example(): Promise<number | null> {
  const input: TrackInput = { customerId: "cus_1", featureId: "messages", value: 2, properties: { plan: "pro", n: [1, 2] } };
  const r: TrackResult = await tracker.track(input);
  await tracker.track({ customer_id: "cus_1", event_name: "message_sent", idempotency_key: "k" });
  if (r.status === "delivered") {
    const response: AutumnTrackResponse | null = r.response;
    const remaining: number | undefined = response?.balance?.remaining;
    return remaining ?? null;
  }
  if (r.status === "queued") {
    const reason: string = r.reason;
    return reason.length + r.message.length;
  }
  // Narrowed: a duplicate has no response.
  // @ts-expect-error response only exists on "delivered"
  r.response;
  return null;
}

export function errors(e: unknown): string | undefined {
  if (e instanceof TrackError) {
    const code: string = e.code;
    const field: string | undefined = e.field;
    const status: number | undefined = e.status;
    return `${code} ${field} ${status} ${e.idempotencyKey}`;
  }
  if (isTrackError(e)) return e.code;
  return undefined;
}

// @ts-expect-error customerId is required
tracker.track({ featureId: "messages" });
// @ts-expect-error value is a number
tracker.track({ customerId: "c", featureId: "f", value: "1" });
// @ts-expect-error unknown option
new AutumnTracker({ secretkey: "am_sk_test_x" });
// @ts-expect-error properties must be JSON
tracker.track({ customerId: "c", featureId: "f", properties: { f: () => 1 } });
// @ts-expect-error unknown input field
tracker.track({ customerId: "c", featureId: "f", customer: "c" });

export async function queue(): Promise<void> {
  const t = new AutumnTracker({
    baseUrl: "/api/autumn",
    queue: "indexeddb",
    maxQueueSize: 5000,
    drain: "single",
    onEvent: (e) => {
      const kind: "queued" | "delivered" | "retrying" | "dead_letter" | "evicted" | "storage_fallback" = e.type;
      void kind;
    },
  });
  const f = await t.flush();
  const n: number = f.delivered + f.duplicates + f.failed + f.remaining;
  const p = await t.pending();
  const storage: "indexeddb" | "memory" | "off" | "sqlite" | "postgres" = p.storage;
  for (const d of await t.deadLetters()) {
    const code: string = d.code;
    const body = d.event?.["customer_id"];
    void code;
    void body;
  }
  await t.discard(["k"]);
  await t.retryDeadLetters();
  await t.retryDeadLetters(["k"]);
  const body = t.validate({ customerId: "c", featureId: "f" });
  void body["idempotency_key"];
  t.close();
  void n;
  void storage;
}

// @ts-expect-error queue kinds are a closed set
new AutumnTracker({ queue: "disk" });
// @ts-expect-error discard takes keys
void tracker.discard();
// @ts-expect-error wasm-bindgen's free() is not part of the tracker
tracker.free();

export function worker(ctx: { waitUntil(p: Promise<unknown>): void }): Promise<TrackResult> {
  const bound = tracker.withContext(ctx);
  void bound.flush();
  const same: AutumnTracker = bound.tracker;
  void same;
  return bound.track({ customerId: "c", featureId: "f" });
}

// @ts-expect-error withContext needs a waitUntil
tracker.withContext({});

// Cloudflare Queues (Node and Workers entries): the producer option and the consumer.

interface Env {
  AUTUMN_SECRET_KEY: string;
  TRACK_QUEUE: CloudflareQueueProducer;
  TRACK_REFUSED: CloudflareQueueProducer;
}

export async function edge(env: Env, ctx: { waitUntil(p: Promise<unknown>): void }): Promise<string> {
  const t = new AutumnTracker({ secretKey: env.AUTUMN_SECRET_KEY, queue: { cloudflareQueue: env.TRACK_QUEUE } });
  const r = await t.withContext(ctx).track({ customerId: "c", featureId: "f" });
  if (r.status === "queued") {
    const where: "cloudflare" | "memory" | undefined = r.queue;
    return `${r.reason} ${where} ${r.message}`;
  }
  const f = await t.flush();
  return String(f.handedOver ?? 0);
}

export async function consumer(batch: MessageBatchLike, env: Env): Promise<number> {
  const report: TrackQueueReport = await handleTrackQueue(batch, {
    secretKey: env.AUTUMN_SECRET_KEY,
    requeue: env.TRACK_QUEUE,
    deadLetter: env.TRACK_REFUSED,
  });
  await handleTrackQueue(batch, {
    secretKey: env.AUTUMN_SECRET_KEY,
    requeue: env.TRACK_QUEUE,
    deadLetter: async (letter: TrackQueueDeadLetter) => void letter.code,
  });
  // @ts-expect-error secretKey is required
  await handleTrackQueue(batch, { baseUrl: "http://127.0.0.1:8787", requeue: env.TRACK_QUEUE });
  return report.delivered + report.retried + report.requeued + report.deadLettered + report.refused.length;
}

// @ts-expect-error the queue option's object form takes a producer binding
new AutumnTracker({ queue: { cloudflareQueue: "TRACK_QUEUE" } });
// @ts-expect-error the object form has cloudflareQueue only
new AutumnTracker({ queue: { cloudflareQueue: { send: async () => undefined }, name: "q" } });
