// The Worker of the Cloudflare Queues suite (queue.test.mjs): a producer (`queue: {
// cloudflareQueue: env.TRACK_QUEUE }`) and a consumer (`handleTrackQueue`) in one Worker, as
// the README shows them, plus routes the test drives and a record of what the consumer did.
// Not a test file: node --test only runs *.test.mjs.

export const QUEUE = "autumn-track";
export const DLQ = "autumn-track-dlq";
export const QUEUE_B = "autumn-track-b";
export const REFUSED = "autumn-track-refused";

// Also the README's wrangler.toml (plus a second queue the suite uses for `deadLetter`):
// wrangler checks it when it bundles.
export const WRANGLER_TOML = `name = "autumn-track-queue-test"
main = "src/index.js"
compatibility_date = "2025-09-01"

[[queues.producers]]
binding = "TRACK_QUEUE"
queue = "${QUEUE}"

[[queues.consumers]]
queue = "${QUEUE}"
max_batch_size = 100
max_batch_timeout = 5
max_retries = 10
dead_letter_queue = "${DLQ}"

[[queues.producers]]
binding = "QUEUE_B"
queue = "${QUEUE_B}"

[[queues.producers]]
binding = "REFUSED"
queue = "${REFUSED}"

[[queues.consumers]]
queue = "${QUEUE_B}"

[[queues.consumers]]
queue = "${DLQ}"

[[queues.consumers]]
queue = "${REFUSED}"
`;

// An attempt that got no answer may still be running at Autumn for up to confirmAfterMs (120 s
// by default): the suite's producers and consumers say 2 s (their timeout), so that the events
// of such attempts are delivered within the test.
export const TIMEOUT_MS = 2000;
export const CONFIRM_AFTER_MS = 2000;

export const QUEUE_WORKER_JS = `import { AutumnTracker, handleTrackQueue } from "autumn-track";

// What the test reads back through GET /state.
const state = { acks: [], retries: [], requeues: [], reports: [], dlq: [], refused: [], events: [], brokenEvents: [], bSeen: [], bReports: [] };
const keyOf = (body) => (body && typeof body === "object" && typeof body.idempotencyKey === "string" ? body.idempotencyKey : null);

let tracker; // one per isolate, as a Worker holds it
let trackerB;
let broken; // a producer whose queue fails while queueBroken is set
let queueBroken = true;

function make(env, binding, events) {
  return new AutumnTracker({
    secretKey: env.AUTUMN_SECRET_KEY,
    baseUrl: env.AUTUMN_URL,
    maxRetries: 0,
    timeoutMs: ${TIMEOUT_MS},
    confirmAfterMs: ${CONFIRM_AFTER_MS},
    queue: { cloudflareQueue: binding },
    onEvent: (e) => events.push(e),
  });
}

export default {
  async fetch(request, env, ctx) {
    const { pathname } = new URL(request.url);
    const body = request.method === "POST" ? await request.json() : {};
    try {
      if (pathname === "/track") {
        tracker ??= make(env, env.TRACK_QUEUE, state.events);
        if (body.background) {
          // The response does not wait; waitUntil carries the send and the hand-over.
          tracker.withContext(ctx).track(body.input).catch(() => {});
          return Response.json({ ok: true }, { status: 202 });
        }
        return Response.json({ ok: true, result: await tracker.track(body.input) });
      }
      if (pathname === "/b/track") {
        trackerB ??= make(env, env.QUEUE_B, state.events);
        return Response.json({ ok: true, result: await trackerB.track(body.input) });
      }
      if (pathname === "/broken/track") {
        broken ??= make(env, {
          send: (m, o) => (queueBroken ? Promise.reject(new Error("simulated: the queue is unavailable")) : env.TRACK_QUEUE.send(m, o)),
          sendBatch: (ms, o) => (queueBroken ? Promise.reject(new Error("simulated: the queue is unavailable")) : env.TRACK_QUEUE.sendBatch(ms, o)),
        }, state.brokenEvents);
        const result = await broken.track(body.input);
        return Response.json({ ok: true, result, pending: await broken.pending() });
      }
      if (pathname === "/broken/flush") {
        queueBroken = body.queueBroken;
        const result = await broken.flush();
        return Response.json({ ok: true, result, pending: await broken.pending() });
      }
      if (pathname === "/raw") {
        // A message that is not one of ours, or a damaged one.
        const q = body.queue === "b" ? env.QUEUE_B : env.TRACK_QUEUE;
        await q.send(body.message, body.contentType ? { contentType: body.contentType } : undefined);
        return Response.json({ ok: true });
      }
      if (pathname === "/state") return Response.json(state);
      return Response.json({ ok: false, error: "no route " + pathname }, { status: 404 });
    } catch (e) {
      return Response.json({ ok: false, error: { name: e?.name, code: e?.code, message: String(e?.message ?? e) } });
    }
  },

  async queue(batch, env) {
    if (batch.queue === "${DLQ}") {
      for (const m of batch.messages) {
        state.dlq.push({ id: m.id, body: m.body, attempts: m.attempts });
        m.ack();
      }
      return;
    }
    if (batch.queue === "${REFUSED}") {
      for (const m of batch.messages) {
        state.refused.push(m.body);
        m.ack();
      }
      return;
    }
    if (batch.queue === "${QUEUE_B}") {
      // Cloudflare's own batch, untouched; refusals go to a queue of our own.
      for (const m of batch.messages) state.bSeen.push({ id: m.id, key: keyOf(m.body), attempts: m.attempts });
      // max_retries = 0 on this queue: maxRetries 1 makes a first temporary failure a copy.
      state.bReports.push(await handleTrackQueue(batch, { secretKey: env.AUTUMN_SECRET_KEY, baseUrl: env.AUTUMN_URL, deadLetter: env.REFUSED, requeue: env.QUEUE_B, maxRetries: 1, retryDelaySeconds: 1, maxRetryDelaySeconds: 1 }));
      return;
    }
    // The main queue: the same messages, watched, so the test sees every ack and retry.
    const messages = batch.messages.map((m) => ({
      id: m.id,
      timestamp: m.timestamp,
      body: m.body,
      attempts: m.attempts,
      ack() {
        state.acks.push({ id: m.id, key: keyOf(m.body), attempts: m.attempts });
        m.ack();
      },
      retry(options) {
        state.retries.push({ id: m.id, key: keyOf(m.body), attempts: m.attempts, delaySeconds: options?.delaySeconds });
        m.retry(options);
      },
    }));
    // Copies re-sent near max_retries go to the same queue, watched too.
    const requeue = {
      send(body, options) {
        state.requeues.push({ key: keyOf(body), delaySeconds: options?.delaySeconds });
        return env.TRACK_QUEUE.send(body, options);
      },
      sendBatch(msgs, options) {
        for (const m of msgs) state.requeues.push({ key: keyOf(m.body), delaySeconds: m.delaySeconds });
        return env.TRACK_QUEUE.sendBatch(msgs, options);
      },
    };
    const report = await handleTrackQueue({ queue: batch.queue, messages }, {
      secretKey: env.AUTUMN_SECRET_KEY,
      baseUrl: env.AUTUMN_URL,
      requeue,
      maxRetries: Number(env.MAX_RETRIES),
      timeoutMs: ${TIMEOUT_MS},
      confirmAfterMs: ${CONFIRM_AFTER_MS},
      retryDelaySeconds: 1,
      maxRetryDelaySeconds: 1,
    });
    state.reports.push(report);
  },
};
`;
