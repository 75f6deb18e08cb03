// Durable delivery at the edge through Cloudflare Queues (Node and Workers entries only: the
// browser entry, and its size budget, never load this file).
//
// Producer: `new AutumnTracker({ …, queue: { cloudflareQueue: env.TRACK_QUEUE } })`. The
// event is validated and sent inline exactly as usual (the wasm core does both, with
// `queue: "off"` underneath); when it cannot be delivered now (network error, timeout, 5xx or
// 429 past the retries) it is not kept in the isolate's memory, which an evicted isolate
// loses: it goes to the Cloudflare Queue producer binding as a message carrying its
// idempotency key and its exact wire body (with the time track() was called as `timestamp`),
// and track() resolves `{ status: "queued", queue: "cloudflare", … }`. Should the queue
// itself refuse the message, the event stays in this isolate's memory and is reported
// (`queue: "memory"` on the result and the `queued` event); `flush()` hands it over again, or
// delivers it.
//
// Consumer: `handleTrackQueue(batch, { secretKey, … })` in the Worker's `queue()` handler
// drains those messages through `POST /v1/balances.batch_track` and acks only what Autumn
// accepted (see its doc comment in index.d.ts).
import { AutumnTracker as CoreTracker } from "./recover.js"; // with panic recovery
import { TrackError } from "./error.js";

const MESSAGE_VERSION = 1;
// The tracker's own retries when a queue takes over afterwards: short enough that the whole
// inline attempt fits in a Worker's `waitUntil` (30 s) with the default 5 s timeout.
const CF_DEFAULT_MAX_RETRIES = 2;
// Cloudflare Queues: at most 100 messages and 256 KB per sendBatch, 128 KB per message.
const SEND_BATCH_MAX = 100;
const SEND_BATCH_BYTES = 250_000;
const SEND_TIMEOUT_MS = 10_000;

// ---- shared ---------------------------------------------------------------------------------

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

function optionsError(field, message) {
  const e = new TrackError(message);
  e.code = "invalid_options";
  e.field = field;
  return e;
}

// ---- producer -------------------------------------------------------------------------------

/** The `queue` option's object form, checked; `null` for the string forms (the core's). */
function readQueueOption(options) {
  const q = options && typeof options === "object" ? options.queue : undefined;
  if (q === null || typeof q !== "object") return null;
  for (const k of Object.keys(q)) {
    if (k !== "cloudflareQueue") throw optionsError("queue", `unknown option queue.${k}; the object form is { cloudflareQueue: env.YOUR_QUEUE }`);
  }
  const binding = q.cloudflareQueue;
  if (!binding || typeof binding.send !== "function") {
    throw optionsError("queue", "queue.cloudflareQueue must be a Cloudflare Queue producer binding (env.YOUR_QUEUE, with send())");
  }
  return binding;
}

/** Why track() could not deliver, from the core's `unavailable` error (as the core says it). */
function reasonOf(e) {
  if (e.status === 429) return "rate_limited";
  if (typeof e.status === "number") return "server_error";
  return /no answer/.test(String(e.message)) ? "timeout" : "network_error";
}

/** The queue message for one event: its key and exact wire body, with its original time. */
function queueMessage(body, createdAt, reason) {
  const wire = body.timestamp === undefined ? { ...body, timestamp: createdAt } : body;
  return { autumnTrack: MESSAGE_VERSION, idempotencyKey: body.idempotency_key, body: JSON.stringify(wire), createdAt, reason };
}

/**
 * `AutumnTracker` of the Node and Workers entries: the core tracker, plus the
 * `queue: { cloudflareQueue }` option. With any other `queue` it is the core tracker unchanged.
 */
export class AutumnTracker extends CoreTracker {
  #cf = null;
  #onEvent = null;
  #listeners = [];
  /** Events the Cloudflare Queue did not take, by key: { message, reason }. */
  #held = new Map();
  /** Held events Autumn then refused for good, by key (a DeadLetterInfo each). */
  #dead = new Map();
  #inFlight = 0;
  #flushing = null;

  constructor(options) {
    const binding = readQueueOption(options);
    if (!binding) {
      super(options);
      return;
    }
    const core = { ...options, queue: "off" };
    if (core.maxRetries === undefined) core.maxRetries = CF_DEFAULT_MAX_RETRIES;
    super(core);
    this.#cf = binding;
    this.#onEvent = typeof options.onEvent === "function" ? options.onEvent : null;
  }

  #emit(event) {
    for (const f of this.#onEvent ? [this.#onEvent, ...this.#listeners] : this.#listeners) {
      try {
        f(event);
      } catch {
        // A listener that throws is ignored, as the core's.
      }
    }
  }

  addEventListener(listener) {
    super.addEventListener(listener);
    if (this.#cf && typeof listener === "function") this.#listeners.push(listener);
  }

  removeEventListener(listener) {
    super.removeEventListener(listener);
    this.#listeners = this.#listeners.filter((f) => f !== listener);
  }

  track(input) {
    if (!this.#cf) return super.track(input);
    let body;
    try {
      // The core's validation and key, synchronously (the input may change later); the
      // result is the wire body, which track() accepts as its snake_case input.
      body = super.validate(input);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#trackVia(body, Date.now());
  }

  async #trackVia(body, createdAt) {
    this.#inFlight++;
    try {
      return await super.track(body);
    } catch (e) {
      if (!(e && e.code === "unavailable")) throw e;
      const reason = reasonOf(e);
      const message = queueMessage(body, createdAt, reason);
      const error = await this.#send([message]);
      const key = message.idempotencyKey;
      if (error === null) {
        this.#emit({ type: "queued", idempotencyKey: key, reason, message: "handed over to the Cloudflare Queue", queue: "cloudflare" });
        return { status: "queued", idempotencyKey: key, reason, queue: "cloudflare" };
      }
      this.#held.set(key, { message, reason });
      const why = `the Cloudflare Queue did not take the event (${error}); it is kept in this isolate's memory until flush()`;
      this.#emit({ type: "queued", idempotencyKey: key, reason, message: why, queue: "memory" });
      return { status: "queued", idempotencyKey: key, reason, queue: "memory", message: why };
    } finally {
      this.#inFlight--;
    }
  }

  /** Sends messages to the Cloudflare Queue; resolves `null`, or the reason it failed. */
  async #send(messages) {
    try {
      if (messages.length === 1 || typeof this.#cf.sendBatch !== "function") {
        for (const m of messages) await within(Promise.resolve(this.#cf.send(m, { contentType: "json" })), SEND_TIMEOUT_MS, "the Cloudflare Queue");
      } else {
        await within(Promise.resolve(this.#cf.sendBatch(messages.map((body) => ({ body, contentType: "json" })))), SEND_TIMEOUT_MS, "the Cloudflare Queue");
      }
      return null;
    } catch (e) {
      return errorText(e);
    }
  }

  flush() {
    if (!this.#cf) return super.flush();
    // One at a time: a flush waits for the one running, then runs.
    const run = (this.#flushing ?? Promise.resolve()).then(() => this.#flushHeld());
    this.#flushing = run.catch(() => {});
    return run;
  }

  // Hands held events to the Cloudflare Queue; what it still refuses is delivered inline if
  // Autumn answers now (a refusal for good becomes a dead letter), else stays held.
  async #flushHeld() {
    const out = { delivered: 0, duplicates: 0, failed: 0, remaining: 0, handedOver: 0 };
    const held = [...this.#held.values()];
    for (let i = 0; i < held.length; ) {
      let bytes = 0;
      let j = i;
      while (j < held.length && j - i < SEND_BATCH_MAX) {
        const size = held[j].message.body.length + 200;
        if (j > i && bytes + size > SEND_BATCH_BYTES) break;
        bytes += size;
        j++;
      }
      const chunk = held.slice(i, j);
      i = j;
      if ((await this.#send(chunk.map((h) => h.message))) === null) {
        for (const h of chunk) {
          this.#held.delete(h.message.idempotencyKey);
          out.handedOver++;
          this.#emit({ type: "queued", idempotencyKey: h.message.idempotencyKey, reason: h.reason, message: "handed over to the Cloudflare Queue", queue: "cloudflare" });
        }
        continue;
      }
      for (const h of chunk) {
        const key = h.message.idempotencyKey;
        try {
          const r = await super.track(JSON.parse(h.message.body));
          this.#held.delete(key);
          if (r.status === "duplicate") out.duplicates++;
          else out.delivered++;
          this.#emit({ type: "delivered", idempotencyKey: key, duplicate: r.status === "duplicate" });
        } catch (e) {
          if (e && e.code === "unavailable") continue;
          this.#held.delete(key);
          out.failed++;
          const code = String(e?.code ?? "http_error");
          const message = errorText(e);
          let event = null;
          try {
            event = JSON.parse(h.message.body);
          } catch {}
          this.#dead.set(key, {
            idempotencyKey: key,
            customerId: String(event?.customer_id ?? ""),
            code,
            message,
            ...(typeof e?.status === "number" ? { status: e.status } : {}),
            createdAt: h.message.createdAt,
            failedAt: Date.now(),
            attempts: 1,
            event,
          });
          this.#emit({ type: "dead_letter", idempotencyKey: key, code, message, ...(typeof e?.status === "number" ? { status: e.status } : {}) });
        }
      }
    }
    out.remaining = this.#held.size;
    return out;
  }

  async pending() {
    if (!this.#cf) return super.pending();
    return { queued: this.#held.size, inFlight: this.#inFlight, deadLetters: this.#dead.size, storage: "memory" };
  }

  async deadLetters() {
    if (!this.#cf) return super.deadLetters();
    return [...this.#dead.values()].map((d) => ({ ...d }));
  }

  async discard(keys) {
    if (!this.#cf) return super.discard(keys);
    const n = await super.discard(keys); // validates `keys` as the core does
    return n + keys.reduce((c, k) => c + (this.#dead.delete(k) ? 1 : 0), 0);
  }

  async retryDeadLetters(keys) {
    if (!this.#cf) return super.retryDeadLetters(keys);
    await super.retryDeadLetters(keys);
    let n = 0;
    for (const d of [...this.#dead.values()]) {
      if (keys != null && !keys.includes(d.idempotencyKey)) continue;
      this.#dead.delete(d.idempotencyKey);
      if (!d.event) continue;
      this.#held.set(d.idempotencyKey, {
        message: { autumnTrack: MESSAGE_VERSION, idempotencyKey: d.idempotencyKey, body: JSON.stringify(d.event), createdAt: d.createdAt, reason: "retried" },
        reason: "retried",
      });
      n++;
    }
    if (n) void this.flush();
    return n;
  }
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
const MAX_DELAY_S = 43_200; // Cloudflare's longest retry delay (12 h)
// Autumn allows 10 batch requests a second per organisation: this isolate spaces its own.
const BATCH_SPACING_MS = 110;
// Autumn's answers that say our key or setup is wrong, not the events: retried, never bisected
// or dead-lettered (the events are fine; the deployment is not).
const SETUP_CODES = new Set(["no_secret_key", "invalid_secret_key", "endpoint_not_public", "insufficient_scopes", "invalid_api_version", "request_temporarily_disabled"]);

let nextBatchAt = 0;

function readConsumerOptions(options) {
  if (!options || typeof options !== "object") throw new TypeError("handleTrackQueue(batch, options): options are required");
  const {
    secretKey, baseUrl = DEFAULT_BASE_URL, apiVersion = DEFAULT_API_VERSION, timeoutMs = DEFAULT_TIMEOUT_MS,
    batchSize = MAX_ITEMS, maxBatchBytes = DEFAULT_MAX_BATCH_BYTES, maxEventAgeMs = DEFAULT_MAX_EVENT_AGE_MS,
    retryDelaySeconds = DEFAULT_RETRY_DELAY_S, maxRetryDelaySeconds = DEFAULT_MAX_RETRY_DELAY_S, deadLetter, ...rest
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
  if (deadLetter !== undefined && typeof deadLetter !== "function" && typeof deadLetter?.send !== "function") {
    throw new TypeError("handleTrackQueue: `deadLetter` must be a Queue producer binding (with send()) or a function");
  }
  return {
    secretKey, url: baseUrl.replace(/\/+$/, "") + BATCH_PATH, apiVersion, timeoutMs, batchSize, maxBatchBytes,
    maxEventAgeMs, retryDelaySeconds, maxRetryDelaySeconds, deadLetter,
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
  return { key, body: b.body, createdAt, customerId: ev.customer_id };
}

/** `Retry-After` (seconds or an HTTP date) → whole seconds, or null. */
function retryAfterSeconds(h) {
  if (!h) return null;
  const s = h.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Math.ceil(Number(s));
  const at = Date.parse(s);
  return Number.isFinite(at) ? Math.max(0, Math.ceil((at - Date.now()) / 1000)) : null;
}

const isRetryableStatus = (s) => s === 408 || s === 429 || (s >= 500 && s < 600 && s !== 501 && s !== 505);

/**
 * Drains a batch of autumn-track messages (from the Worker's `queue(batch, env, ctx)`
 * handler) into Autumn. Never rejects for what Autumn or the network do; throws only for
 * wrong options (then Cloudflare retries the whole batch).
 */
export async function handleTrackQueue(batch, options) {
  const o = readConsumerOptions(options);
  const redact = (t) => (t.includes(o.secretKey) ? t.split(o.secretKey).join("[redacted]") : t);
  const messages = Array.from(batch?.messages ?? []);
  const report = { delivered: 0, retried: 0, deadLettered: 0, refused: [], requests: 0 };
  const done = new Set();
  const ack = (m) => {
    if (done.has(m)) return;
    done.add(m);
    m.ack();
    report.delivered++;
  };
  const retry = (m, delaySeconds) => {
    if (done.has(m)) return;
    done.add(m);
    m.retry({ delaySeconds: Math.min(MAX_DELAY_S, Math.max(0, delaySeconds)) });
    report.retried++;
  };
  const backoff = (msgs) => {
    const attempts = Math.max(1, ...msgs.map((m) => Number(m.attempts) || 1));
    return Math.min(o.maxRetryDelaySeconds, o.retryDelaySeconds * 2 ** Math.min(attempts - 1, 20));
  };

  // Set aside for good: to `deadLetter` (then acked), else retried so that Cloudflare's
  // max_retries and dead_letter_queue take it. Never acked as delivered.
  async function refuse(msgs, letter) {
    const { body: _b, original: _o, createdAt: _c, ...seen } = letter;
    report.refused.push({ messageIds: msgs.map((m) => m.id), ...seen });
    if (o.deadLetter === undefined) {
      for (const m of msgs) retry(m, backoff(msgs));
      return;
    }
    const full = { autumnTrack: MESSAGE_VERSION, ...letter, failedAt: Date.now() };
    try {
      if (typeof o.deadLetter === "function") await o.deadLetter(full);
      else await o.deadLetter.send(full, { contentType: "json" });
    } catch {
      for (const m of msgs) retry(m, backoff(msgs));
      return;
    }
    for (const m of msgs) {
      done.add(m);
      m.ack();
      report.deadLettered++;
    }
  }

  /** One batch_track request: { ok } | { retry, delay, code, status?, message } | { refused, status, code, message }. */
  async function send(items) {
    const wait = nextBatchAt - Date.now();
    if (wait > 0) await sleep(wait);
    nextBatchAt = Date.now() + BATCH_SPACING_MS;
    report.requests++;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), o.timeoutMs);
    let res, text;
    try {
      res = await fetch(o.url, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${o.secretKey}`,
          "Content-Type": "application/json",
          Accept: "application/json",
          "x-api-version": o.apiVersion,
        },
        body: `[${items.map((it) => it.body).join(",")}]`,
        signal: controller.signal,
      });
      text = await res.text();
    } catch (e) {
      const timedOut = controller.signal.aborted;
      return { retry: true, delay: backoff(items.flatMap((it) => it.msgs)), code: timedOut ? "timeout" : "network_error", message: timedOut ? `no answer within ${o.timeoutMs} ms` : redact(errorText(e)) };
    } finally {
      clearTimeout(timer);
    }
    const status = res.status;
    if (status >= 200 && status < 300) return { ok: true };
    if (status === 409 && items.length === 1) return { ok: true, duplicate: true };
    let code = "http_error";
    let message = `HTTP ${status}`;
    try {
      const j = JSON.parse(text);
      if (typeof j?.code === "string") code = j.code.slice(0, 100);
      if (typeof j?.message === "string") message = redact(j.message.slice(0, 1000));
    } catch {}
    if (isRetryableStatus(status)) {
      const after = retryAfterSeconds(res.headers.get("retry-after"));
      return { retry: true, delay: after ?? backoff(items.flatMap((it) => it.msgs)), code: status === 429 ? "rate_limited" : code, status, message };
    }
    if (status === 401 || status === 403 || SETUP_CODES.has(code)) {
      return { retry: true, delay: backoff(items.flatMap((it) => it.msgs)), code, status, message };
    }
    return { refused: true, status, code, message };
  }

  // A 429, or a second retryable failure in this run (an outage, not a blip), stops it: the
  // rest is retried after that delay instead of hammering Autumn.
  let halted = null;
  let failures = 0;
  async function settle(items) {
    if (!items.length) return;
    if (halted) {
      for (const it of items) for (const m of it.msgs) retry(m, halted.delay);
      return;
    }
    const r = await send(items);
    if (r.ok) {
      for (const it of items) for (const m of it.msgs) ack(m);
      return;
    }
    if (r.retry) {
      if (r.status === 429 || ++failures >= 2) halted = r;
      report.retryReason = { code: r.code, ...(r.status ? { status: r.status } : {}), message: r.message };
      for (const it of items) for (const m of it.msgs) retry(m, r.delay);
      return;
    }
    // Refused: a batch is all-or-nothing, so halve it until the refused events are alone.
    if (items.length > 1) {
      const mid = items.length >> 1;
      await settle(items.slice(0, mid));
      await settle(items.slice(mid));
      return;
    }
    const it = items[0];
    if (r.status === 400 && /timestamp/i.test(r.message) && /future/i.test(r.message) && !it.withoutTimestamp) {
      // The producer's clock ran ahead of Autumn's: resend once without the timestamp (as
      // the tracker's own replay does).
      const ev = JSON.parse(it.body);
      delete ev.timestamp;
      await settle([{ ...it, body: JSON.stringify(ev), withoutTimestamp: true }]);
      return;
    }
    await refuse(it.msgs, { idempotencyKey: it.key, customerId: it.customerId, code: r.code, status: r.status, message: r.message, body: it.originalBody, createdAt: it.createdAt });
  }

  try {
    const byKey = new Map();
    const now = Date.now();
    for (const m of messages) {
      const p = readMessage(m);
      if (p.error) {
        let original;
        try {
          original = typeof m.body === "string" ? m.body.slice(0, 65_536) : JSON.parse(JSON.stringify(m.body ?? null));
        } catch {
          original = String(m.body).slice(0, 1000);
        }
        await refuse([m], { ...(p.key ? { idempotencyKey: p.key } : {}), code: "invalid_message", message: p.error, original });
        continue;
      }
      if (now - p.createdAt > o.maxEventAgeMs) {
        // Past Autumn's idempotency window a resend could count twice: set aside, unsent.
        await refuse([m], { idempotencyKey: p.key, customerId: p.customerId, code: "expired", message: "older than maxEventAgeMs: not resent (Autumn's idempotency window may have passed)", body: p.body, createdAt: p.createdAt });
        continue;
      }
      const same = byKey.get(p.key);
      if (same) same.msgs.push(m); // Cloudflare delivers at least once: one send per key
      else byKey.set(p.key, { key: p.key, body: p.body, originalBody: p.body, createdAt: p.createdAt, customerId: p.customerId, msgs: [m] });
    }
    // Chunks of at most batchSize events and maxBatchBytes.
    const items = [...byKey.values()];
    for (let i = 0; i < items.length; ) {
      let j = i;
      let bytes = 2;
      while (j < items.length && j - i < o.batchSize && (j === i || bytes + items[j].body.length + 1 <= o.maxBatchBytes)) {
        bytes += items[j].body.length + 1;
        j++;
      }
      await settle(items.slice(i, j));
      i = j;
    }
  } finally {
    // Whatever an unexpected error left unsettled goes back to the queue: never acked unseen.
    for (const m of messages) if (!done.has(m)) retry(m, o.retryDelaySeconds);
  }
  return report;
}
