// The page of the chaos run (served by tests/chaos/chaos.test.mjs next to the package's js/ and
// pkg/): one tracker on the IndexedDB queue, and a small API the test drives with
// page.evaluate. Every track() settles into `acks` ([seq, key, status] or [seq, key, "error",
// code, message]), which the test collects often; what a reload cuts off is re-tracked by the
// test with the same key.
import { AutumnTracker } from "/js/browser.js";

const params = new URLSearchParams(location.search);
const counts = {}; // onEvent types, and queued reasons
let acks = [];
let active = 0; // track() calls not settled yet
let flushing = false;

const tracker = new AutumnTracker({
  baseUrl: params.get("mock"),
  // The mock stands in for the app's own route, which authenticates the page its own way.
  headers: { Authorization: `Bearer ${params.get("auth")}` },
  queue: "indexeddb",
  queueName: "chaos",
  maxQueueSize: Number(params.get("maxQueue")),
  batchSize: Number(params.get("batch")),
  maxRetries: Number(params.get("retries")),
  timeoutMs: Number(params.get("timeout")),
  // How long an attempt without an answer may still run at the server: the mock's longest
  // stall (hold_claim_ms) is shorter.
  confirmAfterMs: Number(params.get("confirm")),
  onEvent: (e) => {
    counts[e.type] = (counts[e.type] || 0) + 1;
    if (e.type === "queued") counts[`queued:${e.reason}`] = (counts[`queued:${e.reason}`] || 0) + 1;
  },
});

const customers = Number(params.get("customers"));
const input = (seq, key) => ({
  customerId: `chaos_${seq % customers}`,
  featureId: "api_calls",
  properties: { seq, run: params.get("run") },
  ...(key ? { idempotencyKey: key } : {}),
});

window.chaos = {
  /** Keys for these seqs, made by the SDK (validate) before tracking. */
  keysFor(seqs) {
    return seqs.map((s) => tracker.validate(input(s)).idempotency_key);
  },
  /**
   * Starts tracking `items` ([seq, key|null]) with `concurrency` callers; returns at once.
   * With a null key the SDK makes one inside track().
   */
  start(items, concurrency) {
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const [seq, key] = items[next++];
        active++;
        try {
          const r = await tracker.track(input(seq, key));
          acks.push([seq, r.idempotencyKey, r.status]);
        } catch (e) {
          acks.push([seq, e?.idempotencyKey ?? key, "error", String(e?.code), String(e?.message), Date.now()]);
        } finally {
          active--;
        }
      }
    };
    for (let i = 0; i < concurrency; i++) worker();
    return items.length;
  },
  /** Settled calls since the last take(), the event counts, and how many calls are open. */
  take() {
    const out = acks;
    acks = [];
    return { acks: out, active, counts };
  },
  pending: () => tracker.pending(),
  flush: () => tracker.flush(),
  /** Starts a flush() unless one started here is still running; returns at once. */
  kick() {
    if (flushing) return false;
    flushing = true;
    tracker.flush().finally(() => (flushing = false));
    return true;
  },
  deadLetters: () => tracker.deadLetters(),
  online: () => navigator.onLine,
};
document.title = "ready";
