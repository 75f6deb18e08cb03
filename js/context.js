// `tracker.withContext(ctx)` for Cloudflare Workers (and any runtime with a `waitUntil`): a
// view of the tracker whose `track()` and `flush()` register their work with
// `ctx.waitUntil`, so the response need not wait for Autumn and the runtime still keeps the
// isolate alive until the event is delivered. Fire-and-forget without it delivers nothing.
//
// An event that ends `queued` (Autumn unreachable past the retries) is flushed once more
// inside the same `waitUntil`: Workers have no IndexedDB, so the queue is this isolate's
// memory, which an evicted isolate loses. What is still queued then is reported through the
// tracker's `onEvent` (`queued`) and stays in memory for the isolate's next requests.
// With `queue: { cloudflareQueue }` (js/cfqueue.js), such an event is handed to the Cloudflare
// Queue inside this same `waitUntil` instead, and survives the isolate.

const settle = (p) => p.then(
  () => undefined,
  () => undefined,
);

/** Adds `tracker.withContext(ctx)` to the tracker class (Node and Workers entries). */
export function addWithContext(AutumnTracker) {
  AutumnTracker.prototype.withContext = withContext;
  return AutumnTracker;
}

function withContext(ctx) {
  if (!ctx || typeof ctx.waitUntil !== "function") {
    throw new TypeError("withContext(ctx) needs the fetch handler's context (with waitUntil)");
  }
  const tracker = this;
  return {
    track(input) {
      const p = tracker.track(input);
      // With `queue: { cloudflareQueue }` the hand-over to the queue is part of `p`; only an
      // event the queue did not take (`queue: "memory"`) is flushed again.
      ctx.waitUntil(settle(p.then((r) => (r.status === "queued" && r.queue !== "cloudflare" ? tracker.flush() : r))));
      return p;
    },
    flush() {
      const p = tracker.flush();
      ctx.waitUntil(settle(p));
      return p;
    },
    tracker,
  };
}
