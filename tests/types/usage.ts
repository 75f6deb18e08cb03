// Compiled with `tsc --noEmit` against the published types: what a TypeScript user writes must
// type-check, and the mistakes below must not (each `@ts-expect-error` fails the build if the
// line stops being an error).
import { AutumnTracker, TrackError, isTrackError } from "autumn-track";
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
    return reason.length;
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
  const storage: "indexeddb" | "memory" | "off" = p.storage;
  for (const d of await t.deadLetters()) {
    const code: string = d.code;
    void code;
  }
  await t.discard(["k"]);
  await t.retryDeadLetters();
  await t.retryDeadLetters(["k"]);
  t.close();
  void n;
  void storage;
}

// @ts-expect-error queue kinds are a closed set
new AutumnTracker({ queue: "disk" });

export function worker(ctx: { waitUntil(p: Promise<unknown>): void }): Promise<TrackResult> {
  const bound = tracker.withContext(ctx);
  void bound.flush();
  return bound.track({ customerId: "c", featureId: "f" });
}
