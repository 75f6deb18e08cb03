// The Cloudflare Queues consumer (Node and Workers entries only: the browser entry, and its size
// budget, never load this file). Producers are trackers with `queue: { cloudflareQueue }`: their
// engine hands undeliverable events over, and `handOver` below writes them as messages (the
// message format lives in this one file); `handleTrackQueue(batch, options)`
// in the Worker's `queue()` handler drains those messages through `POST
// /v1/balances.batch_track`. Every decision — what is batched, what an answer does to each
// message, when a message is re-sent as a copy before Cloudflare's `max_retries` runs out — is
// the core's (src/consumer.rs, through the wasm `Consumer`); this file reads messages, sends,
// and settles them.
import { glue } from "./wire.js";
import { post } from "./tracker.js";

const MESSAGE_VERSION = 1;
const SEND_TIMEOUT_MS = 10_000;

const errorText = (e) => {
  try {
    return String((e && e.message) || e || "no reason given").slice(0, 500);
  } catch {
    return "no reason given";
  }
};

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Rejects with `what timed out` when `p` has not settled within `ms`. */
function within(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Errors that mean the request never left (Node's undici reports them as `cause.code`): nothing
// can be running at Autumn. Everything else (a reset, a browser's opaque TypeError) may have
// reached it. The Node and Workers entries hand this to the tracker's driver (`post`).
const UNSENT = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"]);
export const unsent = (e) => {
  try {
    // (Node's fetch also refuses the ports the Fetch standard blocks, before connecting.)
    return UNSENT.has(e?.cause?.code) || UNSENT.has(e?.code) || e?.cause?.message === "bad port";
  } catch {
    return false;
  }
};

// ---- producer -------------------------------------------------------------------------------

/** `queue: { cloudflareQueue }` read for the tracker: the binding, `null` for any other queue
 *  option (a mode's name, none), or throws `error(field, message)` for a wrong object. */
export function cloudflareQueue(queue, error) {
  if (queue === null || typeof queue !== "object") return null;
  for (const k of Object.keys(queue)) {
    if (k !== "cloudflareQueue") throw error("queue", `unknown option queue.${k}; the object form is { cloudflareQueue: env.YOUR_QUEUE } (on Node also { sqlite } or { postgres })`);
  }
  const cf = queue.cloudflareQueue;
  if (!cf || typeof cf.send !== "function") {
    throw error("queue", "queue.cloudflareQueue must be a Cloudflare Queue producer binding (env.YOUR_QUEUE, with send())");
  }
  return cf;
}

const HANDOVER_TIMEOUT_MS = 10_000;

/** A tracker's hand-over (the engine's `handover` command, `queue: { cloudflareQueue }`): the
 *  events, each with its key and exact wire body, as messages to the producer binding `q`.
 *  Resolves with nothing once the queue took them all, or with the reason it did not. The
 *  entries for Node and Workers give it to the tracker (`wire`); the browser's has no queue. */
export function handOver(q, items) {
  const msgs = items.map((i) => ({
    body: {
      autumnTrack: MESSAGE_VERSION,
      idempotencyKey: i.idempotencyKey,
      body: i.body,
      createdAt: i.createdAt,
      reason: i.reason,
      ...(i.sentAt !== undefined && { sentAt: i.sentAt }),
    },
    contentType: "json",
    ...(i.delayMs > 0 && { delaySeconds: Math.min(MAX_DELAY_S, Math.ceil(i.delayMs / 1000)) }),
  }));
  const send = () =>
    msgs.length > 1 && typeof q.sendBatch === "function"
      ? q.sendBatch(msgs)
      : msgs.reduce((p, m) => p.then(() => q.send(m.body, { contentType: "json", ...(m.delaySeconds && { delaySeconds: m.delaySeconds }) })), Promise.resolve());
  return within(Promise.resolve().then(send), HANDOVER_TIMEOUT_MS, "the Cloudflare Queue").then(
    () => undefined,
    (e) => errorText(e),
  );
}

// ---- consumer -------------------------------------------------------------------------------

const BATCH_PATH = "/v1/balances.batch_track";
const DEFAULT_BASE_URL = "https://api.useautumn.com";
const DEFAULT_API_VERSION = "2.3.0";
const MAX_ITEMS = 1000; // Autumn's batch limit
const DEFAULT_MAX_BATCH_BYTES = 1 << 20;
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_EVENT_AGE_MS = 23 * 3600_000;
const DEFAULT_RETRY_DELAY_S = 5;
const DEFAULT_MAX_RETRY_DELAY_S = 300;
const DEFAULT_MAX_RETRIES = 3; // Cloudflare's default max_retries
const MAX_DELAY_S = 43_200; // Cloudflare's longest retry delay (12 h)
let lastBatchAt = 0;

function readConsumerOptions(options) {
  if (!options || typeof options !== "object") throw new TypeError("handleTrackQueue(batch, options): options are required");
  const {
    secretKey, baseUrl = DEFAULT_BASE_URL, apiVersion = DEFAULT_API_VERSION, timeoutMs = DEFAULT_TIMEOUT_MS,
    batchSize = MAX_ITEMS, maxBatchBytes = DEFAULT_MAX_BATCH_BYTES, maxEventAgeMs = DEFAULT_MAX_EVENT_AGE_MS,
    retryDelaySeconds = DEFAULT_RETRY_DELAY_S, maxRetryDelaySeconds = DEFAULT_MAX_RETRY_DELAY_S, deadLetter,
    requeue, maxRetries = DEFAULT_MAX_RETRIES, confirmAfterMs = glue.confirmAfterMs(), ...rest
  } = options;
  const unknown = Object.keys(rest);
  if (unknown.length) throw new TypeError(`handleTrackQueue: unknown option ${unknown[0]}`);
  if (typeof secretKey !== "string" || secretKey === "") throw new TypeError("handleTrackQueue: `secretKey` is required (Autumn's am_sk_… key, from a secret binding)");
  if (typeof baseUrl !== "string" || !/^https?:\/\/[^/]/.test(baseUrl)) throw new TypeError("handleTrackQueue: `baseUrl` must be an http(s) URL");
  if (typeof apiVersion !== "string" || apiVersion === "") throw new TypeError("handleTrackQueue: `apiVersion` must be a string");
  const int = (v, lo, hi, name) => {
    if (!(Number.isInteger(v) && v >= lo && v <= hi)) throw new TypeError(`handleTrackQueue: \`${name}\` must be an integer from ${lo} to ${hi}`);
    return v;
  };
  int(timeoutMs, 1, 600_000, "timeoutMs");
  int(batchSize, 1, MAX_ITEMS, "batchSize");
  int(maxBatchBytes, 1024, 100 << 20, "maxBatchBytes");
  if (!(typeof maxEventAgeMs === "number" && maxEventAgeMs > 0)) throw new TypeError("handleTrackQueue: `maxEventAgeMs` must be a positive number");
  int(retryDelaySeconds, 0, MAX_DELAY_S, "retryDelaySeconds");
  int(maxRetryDelaySeconds, 0, MAX_DELAY_S, "maxRetryDelaySeconds");
  int(maxRetries, 1, 100, "maxRetries");
  int(confirmAfterMs, timeoutMs, 86_400_000, "confirmAfterMs");
  if (deadLetter !== undefined && typeof deadLetter !== "function" && typeof deadLetter?.send !== "function") {
    throw new TypeError("handleTrackQueue: `deadLetter` must be a Queue producer binding (with send()) or a function");
  }
  if (typeof requeue?.send !== "function") {
    throw new TypeError(
      "handleTrackQueue: `requeue` is required: the producer binding of this same queue (env.TRACK_QUEUE). Near max_retries a message that could not be delivered yet is re-sent as a copy, so an outage never moves events to the dead letter queue",
    );
  }
  return {
    secretKey, url: baseUrl.replace(/\/+$/, "") + BATCH_PATH, apiVersion, timeoutMs, deadLetter, requeue,
    // The core always names a refusal (`deadLetter` steps, with its letter), so that the report
    // lists it whether or not there is a destination; without one, this file retries it.
    settings: { batchSize, maxBatchBytes, maxEventAgeMs, retryDelaySeconds, maxRetryDelaySeconds, maxRetries, confirmAfterMs, requeue: true, deadLetter: true },
  };
}

/** A message body of ours, checked: { key, body, createdAt } or { error }. */
function readMessage(m) {
  const b = m.body;
  if (!b || typeof b !== "object" || b.autumnTrack === undefined) return { error: "not an autumn-track message" };
  if (b.autumnTrack !== MESSAGE_VERSION) return { error: `unknown autumn-track message version ${String(b.autumnTrack).slice(0, 20)}` };
  const key = b.idempotencyKey;
  if (typeof key !== "string" || key === "" || key.length > 256) return { error: "the message has no valid idempotencyKey" };
  let ev;
  try {
    ev = typeof b.body === "string" ? JSON.parse(b.body) : null;
  } catch {}
  if (!ev || typeof ev !== "object" || Array.isArray(ev)) return { error: "the message's body is not a JSON object", key };
  if (ev.idempotency_key !== key) return { error: "the body's idempotency_key differs from the message's", key };
  if (typeof ev.customer_id !== "string" || ev.customer_id === "") return { error: "the body has no customer_id", key };
  const ts = m.timestamp instanceof Date ? m.timestamp.getTime() : Number(m.timestamp);
  const createdAt = Number.isFinite(b.createdAt) ? b.createdAt : Number.isFinite(ts) ? ts : Date.now();
  return { key, body: b.body, createdAt, customer: ev.customer_id, ...(Number.isFinite(b.sentAt) && { sentAt: b.sentAt }), message: b };
}

/**
 * Drains a batch of autumn-track messages (from the Worker's `queue(batch, env, ctx)` handler)
 * into Autumn. Never rejects for what Autumn or the network do; throws only for wrong options
 * (then Cloudflare retries the whole batch).
 */
export async function handleTrackQueue(batch, options) {
  const o = readConsumerOptions(options);
  const redact = (t) => (typeof t === "string" && t.includes(o.secretKey) ? t.split(o.secretKey).join("[redacted]") : t);
  const messages = Array.from(batch?.messages ?? []);
  const report = { delivered: 0, retried: 0, requeued: 0, deadLettered: 0, refused: [], requests: 0 };
  const read = messages.map((m) => {
    const p = readMessage(m);
    const attempts = Number(m.attempts) || 1;
    return p.error ? { attempts, ...(p.key && { key: p.key }), error: p.error } : { attempts, ...p };
  });
  const done = new Set();
  const settle = (i, f) => {
    const m = messages[i];
    if (!m || done.has(m)) return false;
    done.add(m);
    f(m);
    return true;
  };
  const retry = (i, delay) => settle(i, (m) => (m.retry({ delaySeconds: Math.min(MAX_DELAY_S, Math.max(0, delay)) }), report.retried++));
  const headers = { Authorization: `Bearer ${o.secretKey}`, "Content-Type": "application/json", Accept: "application/json", "x-api-version": o.apiVersion };
  const c = new glue.Consumer(o.settings, read, Date.now(), lastBatchAt);
  try {
    for (;;) {
      const box = [];
      c.next(Date.now(), box);
      const s = box[0];
      if (s.t === "done") {
        lastBatchAt = s.lastBatchAt;
        break;
      }
      if (s.t === "wait") await sleep(s.ms);
      else if (s.t === "send") {
        report.requests++;
        const r = await post(o.url, headers, s.body, o.timeoutMs, false, unsent);
        const now = Date.now();
        if (r.answer) {
          const a = r.answer;
          if (a.status >= 300) {
            // A 429's body is plain text: it is reported as `rate_limited`.
            const code = a.code ?? (a.status === 429 ? "rate_limited" : undefined);
            report.retryReason = { status: a.status, ...(code && { code }), message: redact(a.message ?? a.snippet ?? "") };
          }
          c.answered(a.status, a.redirected, a.code, a.message, a.snippet, a.retryAfter, a.retryAfterDate, now);
        } else {
          report.retryReason = { code: r.how === "timeout" ? "timeout" : "network_error", message: r.how === "timeout" ? `no answer within ${o.timeoutMs} ms` : redact(r.error) };
          c.failed(r.how, r.error, now);
        }
      } else if (s.t === "ack") for (const i of s.msgs) settle(i, (m) => (m.ack(), report.delivered++));
      else if (s.t === "retry") for (const i of s.msgs) retry(i, s.delay);
      else if (s.t === "requeue") {
        // A copy (same key, same body, same age) instead of a retry Cloudflare would count.
        const copies = s.msgs.map((i) => ({ i, body: { ...read[i].message, requeued: (read[i].message.requeued ?? 0) + 1 } }));
        try {
          await within(
            Promise.resolve(
              typeof o.requeue.sendBatch === "function"
                ? o.requeue.sendBatch(copies.map((x) => ({ body: x.body, contentType: "json", ...(s.delay > 0 && { delaySeconds: s.delay }) })))
                : Promise.all(copies.map((x) => o.requeue.send(x.body, { contentType: "json", ...(s.delay > 0 && { delaySeconds: s.delay }) }))),
            ),
            SEND_TIMEOUT_MS,
            "the Cloudflare Queue",
          );
          for (const { i } of copies) settle(i, (m) => (m.ack(), report.requeued++));
        } catch {
          for (const { i } of copies) retry(i, s.delay);
        }
      } else if (s.t === "deadLetter") {
        const l = s.letter;
        const first = read[s.msgs[0]];
        report.refused.push({ messageIds: s.msgs.map((i) => messages[i]?.id), ...l, message: redact(l.message) });
        const full = {
          autumnTrack: MESSAGE_VERSION,
          ...l,
          message: redact(l.message),
          ...(first?.body !== undefined ? { body: first.body, createdAt: first.createdAt } : { original: original(messages[s.msgs[0]]) }),
          failedAt: Date.now(),
        };
        if (o.deadLetter === undefined) {
          // No destination: retried, so that the queue's max_retries and dead_letter_queue take
          // it (never acked, never copied), with the backoff of its attempts.
          const d = backoff(o.settings, Math.max(...s.msgs.map((i) => read[i]?.attempts ?? 1)));
          for (const i of s.msgs) retry(i, d);
          continue;
        }
        try {
          if (typeof o.deadLetter === "function") await o.deadLetter(full);
          else await o.deadLetter.send(full, { contentType: "json" });
          for (const i of s.msgs) settle(i, (m) => (m.ack(), report.deadLettered++));
        } catch {
          for (const i of s.msgs) retry(i, o.settings.retryDelaySeconds);
        }
      }
    }
  } finally {
    // Whatever an unexpected error left unsettled goes back to the queue: never acked unseen.
    for (let i = 0; i < messages.length; i++) retry(i, o.settings.retryDelaySeconds);
    c.free?.();
  }
  return report;
}

/** `retryDelaySeconds`, doubled per Cloudflare attempt, up to `maxRetryDelaySeconds` (the core's
 *  backoff for a refusal it would have retried itself). */
function backoff(s, attempts) {
  const n = Math.max(1, Math.min(Number(attempts) || 1, 21));
  return Math.min(s.maxRetryDelaySeconds, s.retryDelaySeconds * 2 ** (n - 1));
}

/** A foreign message's body, bounded, for its dead letter. */
function original(m) {
  try {
    return typeof m?.body === "string" ? m.body.slice(0, 65_536) : JSON.parse(JSON.stringify(m?.body ?? null));
  } catch {
    return String(m?.body).slice(0, 1000);
  }
}
