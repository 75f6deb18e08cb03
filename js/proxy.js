// The route that carries browser trackers' events to Autumn: `handleTrackRequest(request,
// options)` is a fetch handler (Request in, Response out) for Cloudflare Workers and any
// runtime with `Request`/`Response` (Node >= 20 behind a fetch-style router, Deno, Bun).
//
// A browser tracker (`new AutumnTracker({ baseUrl: "https://app.example/api/autumn" })`, no
// key) POSTs Autumn's snake_case track body to `{baseUrl}/v1/balances.track`, and arrays of
// them to `{baseUrl}/v1/balances.batch_track` when it drains its queue. This route checks
// the caller (CORS, `identify`, a rate limit, the body size), checks that every event is for
// a customer the caller is (an event tracked for someone else — a queue replayed after another
// user signed in on the same browser — is refused with 403 `customer_mismatch`, which the
// browser keeps until that customer is back), keeps the browser's `idempotency_key`, and
// forwards each event through the package's own `AutumnTracker` (validation, the key, retries
// and what each answer means all come from the wasm core). Its answers speak the browser
// tracker's language: 2xx delivered, 409 already recorded, 503 + Retry-After "keep it queued
// and resend with the same key" (`unconfirmed` when an upstream attempt got no answer and may
// still be running), 401/403 "keep it", other 4xx refused for good.
//
// Only the Node and Workers entries export it: the browser entry (and its size budget) never
// loads this file.
import { AutumnTracker, glue } from "./wire.js";
import { DEFER } from "./tracker.js";

/** What `identify` returns for a trusted server caller that may bill any customer (the relay's
 *  "*" tokens): each event must then name its customer. Never return it for a browser session. */
export const ANY_CUSTOMER = Symbol.for("autumn-track.any-customer");

const TRACK_PATH = "/v1/balances.track";
const BATCH_PATH = "/v1/balances.batch_track";
const DEFAULT_BASE_URL = "https://api.useautumn.com";
const DEFAULT_MAX_BODY_BYTES = 1 << 20;
const DEFAULT_MAX_RETRIES = 2;
const MAX_BATCH_ITEMS = 1000; // Autumn's own limit
// Upstream requests in flight per batch: Workers run at most 6 connections at once per request.
const BATCH_CONCURRENCY = 6;
const ALLOW_HEADERS = ["Content-Type", "Accept", "x-api-version", "Idempotency-Key", "Authorization"];
const PREFLIGHT_MAX_AGE = "86400";
const TOO_MANY = "Too many requests, please try again later.";

// ---- module-level state (one per isolate / process) ---------------------------------------

/** A tracker that validates without sending (see `validateAll`). */
let validator;
/** Rate limiters by `${limit}/${windowMs}`. */
const limiters = new Map();

/**
 * The upstream tracker of one request, closed once the request is answered. Not shared across
 * requests: a tracker runs every call's sends and its one timer from whichever call last fed
 * it, and a Worker's runtime cancels a request's pending fetches and timers once that request
 * is answered — so concurrent requests sharing one tracker stall each other (workerd then
 * cancels them as hung). Nothing a shared tracker would remember is lost: each browser event
 * keeps its own key, and the browser itself waits out an `unconfirmed` attempt.
 */
function upstreamTracker(o) {
  return new AutumnTracker({
    secretKey: o.secretKey,
    baseUrl: o.baseUrl,
    apiVersion: o.apiVersion,
    timeoutMs: o.timeoutMs,
    maxRetries: o.maxRetries,
    // The browser holds the durable queue; this route answers honestly instead of holding
    // events in a memory that dies with the isolate.
    queue: "off",
  });
}

/** Long-lived trackers of routes that hold events durably (`queue`), by their options. */
const durables = new Map();

/** The route's own durable tracker: one per queue and upstream, kept across requests. Its
 *  drain delivers what requests commit; `onEvent` sees its dead letters and retries. */
function durableTracker(o) {
  const id = JSON.stringify([o.queue.sqlite ?? null, o.queueName, o.baseUrl, o.apiVersion ?? null, o.secretKey.length]);
  const hit = durables.get(id);
  if (hit && hit.pool === (o.queue.postgres ?? null) && hit.secretKey === o.secretKey) return hit.tracker;
  const tracker = new AutumnTracker({
    secretKey: o.secretKey,
    baseUrl: o.baseUrl,
    apiVersion: o.apiVersion,
    timeoutMs: o.timeoutMs,
    queue: o.queue,
    queueName: o.queueName,
    ...(o.onEvent && { onEvent: o.onEvent }),
  });
  durables.set(id, { tracker, pool: o.queue.postgres ?? null, secretKey: o.secretKey });
  return tracker;
}

/** The tracker that holds and delivers the events of the route with these options (which must
 *  have a `queue`): for counts and dead letters (the relay's /healthz). */
export function routeTracker(options) {
  const o = readOptions(options);
  if (!o.queue) throw new TypeError("routeTracker: the options have no `queue`");
  return durableTracker(o);
}

/** A tracker used only for `validate()` (the core's rules, without a send). */
function validatorTracker() {
  validator ??= new AutumnTracker({ queue: "off" });
  return validator;
}

// ---- options --------------------------------------------------------------------------------

class ConfigError extends Error {}

function readOptions(options) {
  if (!options || typeof options !== "object") throw new ConfigError("handleTrackRequest(request, options): options are required");
  const {
    secretKey, identify, allowedOrigins, baseUrl = DEFAULT_BASE_URL, apiVersion, timeoutMs,
    maxRetries = DEFAULT_MAX_RETRIES, maxBodyBytes = DEFAULT_MAX_BODY_BYTES, rateLimit, pathPrefix, authorize,
    queue, queueName = "autumn-track-route", onEvent,
  } = options;
  if (queue !== undefined && (queue === null || typeof queue !== "object" || (typeof queue.sqlite !== "string" && typeof queue.postgres?.connect !== "function"))) {
    throw new ConfigError('`queue` must be { sqlite: "./queue.db" } or { postgres: pool } (Node)');
  }
  if (onEvent !== undefined && typeof onEvent !== "function") throw new ConfigError("`onEvent` must be a function");
  if (typeof secretKey !== "string" || secretKey === "") throw new ConfigError("`secretKey` is required (Autumn's am_sk_… key, from a secret binding or the environment)");
  if (typeof identify !== "function") throw new ConfigError("`identify(request)` is required: it returns the caller's Autumn customer id, or null");
  if (authorize !== undefined && typeof authorize !== "function") throw new ConfigError("`authorize` must be a function");
  let origins;
  if (allowedOrigins === undefined || allowedOrigins === null) origins = [];
  else if (allowedOrigins === "*") origins = "*";
  else if (Array.isArray(allowedOrigins) && allowedOrigins.every((o) => typeof o === "string")) origins = allowedOrigins.map((o) => o.replace(/\/+$/, ""));
  else throw new ConfigError('`allowedOrigins` must be an array of origins ("https://app.example") or "*"');
  if (!(Number.isInteger(maxBodyBytes) && maxBodyBytes > 0)) throw new ConfigError("`maxBodyBytes` must be a positive integer");
  if (rateLimit !== undefined && rateLimit !== null) {
    const { limit, windowMs } = rateLimit;
    if (!(Number.isInteger(limit) && limit > 0 && Number.isFinite(windowMs) && windowMs > 0)) {
      throw new ConfigError("`rateLimit` must be { limit: positive integer, windowMs: positive number }");
    }
  }
  if (pathPrefix !== undefined && (typeof pathPrefix !== "string" || !pathPrefix.startsWith("/"))) throw new ConfigError('`pathPrefix` must be a path such as "/api/autumn"');
  return {
    secretKey, identify, authorize, origins, baseUrl, apiVersion, timeoutMs, maxRetries, maxBodyBytes,
    rateLimit: rateLimit ?? null,
    pathPrefix: pathPrefix === undefined ? undefined : pathPrefix.replace(/\/+$/, ""),
    queue, queueName, onEvent,
  };
}

// ---- responses --------------------------------------------------------------------------------

function redact(text, secretKey) {
  return secretKey && text.includes(secretKey) ? text.split(secretKey).join("[redacted]") : text;
}

function respond(ctx, status, body, headers = {}) {
  const h = new Headers(headers);
  h.set("Cache-Control", "no-store");
  h.set("X-Content-Type-Options", "nosniff");
  h.set("Date", new Date().toUTCString());
  if (ctx.cors) {
    h.set("Access-Control-Allow-Origin", ctx.cors);
    h.set("Access-Control-Expose-Headers", "Retry-After, Date");
    if (ctx.cors !== "*") h.append("Vary", "Origin");
  }
  let payload = null;
  if (typeof body === "string") {
    payload = redact(body, ctx.secretKey);
    if (!h.has("Content-Type")) h.set("Content-Type", "text/plain; charset=utf-8");
  } else if (body !== undefined && body !== null) {
    payload = redact(JSON.stringify(body), ctx.secretKey);
    h.set("Content-Type", "application/json");
  }
  return new Response(payload, { status, headers: h });
}

const error = (ctx, status, code, message, extra = {}, headers) => respond(ctx, status, { code, message, ...extra }, headers);
const unavailable = (ctx, message) => error(ctx, 503, "upstream_unavailable", message, {}, { "Retry-After": "1" });

// ---- CORS -------------------------------------------------------------------------------------

/** The Access-Control-Allow-Origin value for this request's Origin, "" if it has none, or null
 *  when it is not allowed. Same-origin requests are always allowed. */
function corsOrigin(request, url, origins) {
  const origin = request.headers.get("Origin");
  if (origin === null) return "";
  if (origin === url.origin) return origin;
  if (origins === "*") return "*";
  return origins.includes(origin) ? origin : null;
}

function preflight(ctx, request) {
  const h = {
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
  };
  const requested = (request.headers.get("Access-Control-Request-Headers") || "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/.test(s));
  const names = [...ALLOW_HEADERS];
  for (const r of requested) if (!names.some((n) => n.toLowerCase() === r.toLowerCase())) names.push(r);
  h["Access-Control-Allow-Headers"] = names.slice(0, 32).join(", ");
  const res = respond(ctx, 204, null, h);
  res.headers.append("Vary", "Access-Control-Request-Headers");
  return res;
}

// ---- rate limit -------------------------------------------------------------------------------

/** Sliding-window counter per identity (the previous window's count, weighted by how much of
 *  it still overlaps, plus this window's). In memory: per isolate or process. */
class Limiter {
  constructor(limit, windowMs) {
    this.limit = limit;
    this.windowMs = windowMs;
    this.byId = new Map();
  }

  /** 0 when allowed (and counted), else the milliseconds to wait. */
  take(id, now = Date.now()) {
    const { limit, windowMs } = this;
    const win = Math.floor(now / windowMs);
    let s = this.byId.get(id);
    if (!s) {
      this.sweep(win);
      s = { win, prev: 0, curr: 0 };
      this.byId.set(id, s);
    } else if (s.win !== win) {
      s.prev = s.win === win - 1 ? s.curr : 0;
      s.curr = 0;
      s.win = win;
    }
    const elapsed = now - win * windowMs;
    const estimate = (s.prev * (windowMs - elapsed)) / windowMs + s.curr;
    if (estimate + 1 <= limit) {
      s.curr += 1;
      return 0;
    }
    // When does the estimate leave room for one more?
    if (s.curr + 1 > limit) return windowMs - elapsed + 1; // not before the next window
    const wait = windowMs - elapsed - ((limit - 1 - s.curr) * windowMs) / s.prev;
    return Math.max(1, Math.ceil(wait));
  }

  /** Bounded memory: drop identities idle for two windows once there are many. */
  sweep(win) {
    if (this.byId.size < 10_000) return;
    for (const [id, s] of this.byId) if (s.win < win - 1) this.byId.delete(id);
    // Still full of active identities: forget the oldest (they get a fresh window).
    for (const id of this.byId.keys()) {
      if (this.byId.size < 50_000) break;
      this.byId.delete(id);
    }
  }
}

function limiterFor({ limit, windowMs }) {
  const id = `${limit}/${windowMs}`;
  let l = limiters.get(id);
  if (!l) limiters.set(id, (l = new Limiter(limit, windowMs)));
  return l;
}

// ---- the body ---------------------------------------------------------------------------------

/** The body's bytes, or null once it passes `max` (the rest is not read). */
async function readBody(request, max) {
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

const isPlainObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** The browser's event, for the caller: its customer must be one the caller is (`ids`); an
 *  event without one is the caller's own. Its idempotency key is kept (from the
 *  `Idempotency-Key` header if the body has none; without either, the tracker makes one).
 *  `null` when the event is for someone else. */
function forCaller(body, ids, headerKey) {
  const claimed = body.customer_id ?? body.customerId;
  if (ids === ANY_CUSTOMER) {
    // Validation names a missing or bad customer_id; nothing else to check here.
  } else if (claimed !== undefined && !ids.includes(claimed)) return null;
  const input = {};
  for (const [k, v] of Object.entries(body)) {
    if (k !== "customer_id" && k !== "customerId") input[k] = v;
  }
  if (claimed !== undefined || ids !== ANY_CUSTOMER) input.customer_id = claimed ?? ids[0];
  if (input.idempotency_key === undefined && input.idempotencyKey === undefined && headerKey) {
    input.idempotency_key = headerKey;
  }
  return input;
}

const mismatch = (ctx, where = "") =>
  error(ctx, 403, "customer_mismatch", `${where}this event was tracked for another customer than the one signed in: it is kept by the browser until that customer is signed in again`);

// ---- mapping the tracker's outcomes -----------------------------------------------------------

function isTrackError(e) {
  return e instanceof Error && e.name === "TrackError" && typeof e.code === "string";
}

/** `{ status, body, retry }` for a tracker failure; `prefix` names the batch item. */
function failure(e, prefix = "") {
  if (!isTrackError(e)) {
    return { status: 500, body: { code: "internal_error", message: `${prefix}the proxy failed` }, log: e };
  }
  const message = `${prefix}${e.message}`;
  switch (e.code) {
    case "invalid_input":
      return { status: 400, body: { code: "invalid_inputs", message, field: e.field } };
    case "unavailable": {
      // An upstream attempt got no answer (or a 409 could not prove a recording yet): it may
      // still be running at Autumn. The browser then waits out the window before a 409 counts.
      const unconfirmed = e.unanswered === true || Number.isFinite(e.retryAfterMs);
      const after = Number.isFinite(e.retryAfterMs) ? Math.max(1, Math.ceil(e.retryAfterMs / 1000)) : 1;
      return { status: 503, body: { code: unconfirmed ? "unconfirmed" : "upstream_unavailable", message }, retry: after };
    }
    case "invalid_options":
      return { status: 500, body: { code: "proxy_misconfigured", message: `${prefix}the proxy's Autumn options are wrong (${e.field ?? "?"})` }, log: e };
    default:
      break;
  }
  const status = e.status;
  // What Autumn's answer means comes from the core (one list of Autumn's codes): a refusal of
  // the route's own key or settings must not make browsers dead-letter their events.
  const verdict = Number.isInteger(status) ? glue.classify(status, e.code, undefined, false) : "unproven";
  if (verdict === "unauthorized" || verdict === "redirected") {
    return { status: 502, body: { code: "proxy_misconfigured", message: `${prefix}Autumn refused the proxy's credentials or settings (${e.code})` }, log: e };
  }
  if (verdict === "refused" || verdict === "future_timestamp") return { status, body: { code: e.code, message } };
  return { status: 502, body: { code: e.code, message } };
}

function logged(ctx, f) {
  if (f.log) console.error(redact(`autumn-track proxy: ${f.body.message}: ${f.log?.message ?? f.log}`, ctx.secretKey));
  return respond(ctx, f.status, f.body, f.retry ? { "Retry-After": String(f.retry) } : undefined);
}

async function trackOne(ctx, tracker, input) {
  let r;
  try {
    r = await tracker.track(input);
  } catch (e) {
    return logged(ctx, failure(e));
  }
  if (r.status === "delivered") return respond(ctx, 200, r.response ?? { success: true });
  if (r.status === "duplicate") {
    return error(ctx, 409, "duplicate_idempotency_key", "this idempotency key was already recorded: the event is counted once");
  }
  return unavailable(ctx, "the event could not be delivered now: resend it with the same idempotency key");
}

/** Validates every item with the core's rules before anything is sent; the first failure. */
async function validateAll(inputs) {
  const v = validatorTracker();
  for (let i = 0; i < inputs.length; i++) {
    try {
      v.validate(inputs[i]);
    } catch (e) {
      return failure(e, `items[${i}]: `);
    }
  }
  return null;
}

async function trackBatch(ctx, tracker, inputs) {
  const results = new Array(inputs.length);
  let next = 0;
  let stop = false;
  const worker = async () => {
    while (!stop && next < inputs.length) {
      const i = next++;
      try {
        results[i] = { ok: await tracker.track(inputs[i]) };
      } catch (e) {
        results[i] = { err: e };
        // The upstream is struggling: don't start more; the browser resends the batch later.
        if (!isTrackError(e) || e.code === "unavailable") stop = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(BATCH_CONCURRENCY, inputs.length) }, worker));
  let refusal = null;
  for (let i = 0; i < inputs.length; i++) {
    const r = results[i];
    if (r === undefined) return unavailable(ctx, "the upstream is unavailable: resend the batch (recorded items are not counted twice)");
    if (r.err) {
      const f = failure(r.err, `items[${i}]: `);
      // Unavailable (503 + Retry-After) or the proxy's own fault (5xx): the browser keeps the
      // batch and resends it; items already recorded then answer 409 and are not counted twice.
      if (f.status >= 500) return logged(ctx, f);
      refusal ??= f;
    } else if (r.ok.status === "queued") {
      return unavailable(ctx, `items[${i}]: could not be delivered now`);
    }
  }
  if (refusal) return logged(ctx, refusal);
  return respond(ctx, 200, { success: true });
}

// ---- the handler -------------------------------------------------------------------------------

/**
 * Handles a browser tracker's POST to `…/v1/balances.track` or `…/v1/balances.batch_track`
 * (and its CORS preflight), forwarding the events to Autumn with the secret key, as the
 * customer `identify(request)` names. Never throws: every outcome is a Response.
 */
export async function handleTrackRequest(request, options) {
  const ctx = { cors: "", secretKey: typeof options?.secretKey === "string" ? options.secretKey : "" };
  let o;
  try {
    o = readOptions(options);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`autumn-track proxy: ${e.message}`);
    return error(ctx, 500, "proxy_misconfigured", "the tracking route is misconfigured");
  }
  try {
    return await handle(request, o, ctx);
  } catch (e) {
    console.error(redact(`autumn-track proxy: ${e?.stack ?? e}`, o.secretKey));
    return error(ctx, 500, "internal_error", "the tracking route failed");
  }
}

async function handle(request, o, ctx) {
  const url = new URL(request.url);
  const path = url.pathname;
  const match = (suffix) => (o.pathPrefix === undefined ? path.endsWith(suffix) : path === o.pathPrefix + suffix);
  const kind = match(TRACK_PATH) ? "track" : match(BATCH_PATH) ? "batch" : null;

  const allowed = corsOrigin(request, url, o.origins);
  if (allowed) ctx.cors = allowed;
  if (kind === null) return error(ctx, 404, "not_found", `no route ${path}: POST …${TRACK_PATH} or …${BATCH_PATH}`);

  if (request.method === "OPTIONS") {
    if (allowed === null) return error(ctx, 403, "origin_not_allowed", "this origin may not call the tracking route");
    if (allowed === "") return respond(ctx, 204, null, { Allow: "POST, OPTIONS" });
    return preflight(ctx, request);
  }
  if (request.method !== "POST") return error(ctx, 405, "method_not_allowed", "use POST", {}, { Allow: "POST, OPTIONS" });
  // Browsers always send Origin on cross-origin POSTs: refuse other sites' pages (including
  // form posts riding on cookies).
  if (allowed === null) return error(ctx, 403, "origin_not_allowed", "this origin may not call the tracking route");

  const declared = request.headers.get("Content-Length");
  if (declared !== null && Number(declared) > o.maxBodyBytes) return tooLarge(ctx, o);

  let who;
  try {
    who = await o.identify(request);
  } catch {
    who = null;
  }
  // One customer id, the ids the caller may bill (a user of several organisations), or — for a
  // trusted server caller only (the relay's "*" tokens) — ANY_CUSTOMER: the one each event names.
  const ids = who === ANY_CUSTOMER ? ANY_CUSTOMER : (Array.isArray(who) ? who : [who]).filter((x) => typeof x === "string" && x !== "");
  if (ids !== ANY_CUSTOMER && ids.length === 0) {
    return error(ctx, 401, "unauthorized", "sign in first: this route tracks usage for the signed-in customer only");
  }
  const customerId = ids === ANY_CUSTOMER ? "*" : ids[0];

  if (o.rateLimit) {
    const waitMs = limiterFor(o.rateLimit).take(customerId);
    if (waitMs > 0) return respond(ctx, 429, TOO_MANY, { "Retry-After": String(Math.max(1, Math.ceil(waitMs / 1000))) });
  }

  const bytes = await readBody(request, o.maxBodyBytes);
  if (bytes === null) return tooLarge(ctx, o);
  let body;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return error(ctx, 400, "invalid_json", "the body is not valid JSON");
  }

  let tracker;
  try {
    tracker = o.queue ? durableTracker(o) : upstreamTracker(o);
  } catch (e) {
    return logged(ctx, failure(e)); // bad upstream options: 500 proxy_misconfigured
  }
  try {
    return await forward(ctx, o, request, kind, body, ids, tracker);
  } finally {
    if (!o.queue) tracker.close();
  }
}

/** A route with a durable `queue`: the events are committed there, and the caller is answered
 *  202 then (not after Autumn answered); the route's own drain delivers them with their keys. */
async function commit(ctx, tracker, inputs) {
  let results;
  try {
    results = await Promise.all(inputs.map((input) => tracker[DEFER](input)));
  } catch (e) {
    return logged(ctx, failure(e, inputs.length > 1 ? "items: " : ""));
  }
  // Only a durable commit is an answer: a queue that fell back to memory (it did not open) is
  // this process's alone, and the caller keeps its events instead.
  const weak = results.find((r) => r.storage !== "sqlite" && r.storage !== "postgres");
  if (weak) return unavailable(ctx, "the route's queue is not available: resend with the same idempotency key");
  return respond(ctx, 202, { success: true, queued: results.length });
}

/** Checks the parsed body's events for the caller and forwards them through `tracker`. */
async function forward(ctx, o, request, kind, body, ids, tracker) {
  const customerId = ids[0];
  const headerKey = request.headers.get("Idempotency-Key");

  if (kind === "track") {
    if (!isPlainObject(body)) return error(ctx, 400, "invalid_inputs", "the body must be a JSON object (one track body)");
    const input = forCaller(body, ids, headerKey);
    if (input === null) return mismatch(ctx);
    const refused = await authorizeAll(o, [input], input.customer_id, request, "");
    if (refused) return refused(ctx);
    return o.queue ? commit(ctx, tracker, [input]) : trackOne(ctx, tracker, input);
  }

  if (!Array.isArray(body) || body.length < 1 || body.length > MAX_BATCH_ITEMS) {
    return error(ctx, 400, "invalid_inputs", `the body must be a JSON array of 1 to ${MAX_BATCH_ITEMS} track bodies`);
  }
  const bad = body.findIndex((item) => !isPlainObject(item));
  if (bad >= 0) return error(ctx, 400, "invalid_inputs", `items[${bad}]: must be a JSON object`);
  // Each item keeps its own key; the batch's Idempotency-Key header (if any) is not an item's.
  const inputs = body.map((item) => forCaller(item, ids, null));
  const foreign = inputs.indexOf(null);
  if (foreign >= 0) return mismatch(ctx, `items[${foreign}]: `);
  const invalid = await validateAll(inputs);
  if (invalid) return logged(ctx, invalid);
  const refused = await authorizeAll(o, inputs, customerId, request, "items");
  if (refused) return refused(ctx);
  return o.queue ? commit(ctx, tracker, inputs) : trackBatch(ctx, tracker, inputs);
}

function tooLarge(ctx, o) {
  return error(ctx, 413, "payload_too_large", `the body is larger than ${o.maxBodyBytes} bytes`);
}

/** Runs the optional `authorize(event, { customerId, request })` on every event; a refusal
 *  (false or a throw) is a 403 for the whole request. */
async function authorizeAll(o, inputs, customerId, request, label) {
  if (!o.authorize) return null;
  for (let i = 0; i < inputs.length; i++) {
    let ok;
    try {
      ok = (await o.authorize(inputs[i], { customerId: inputs[i].customer_id ?? customerId, request })) === true;
    } catch {
      ok = false;
    }
    if (!ok) {
      const where = label ? `${label}[${i}]: ` : "";
      return (ctx) => error(ctx, 403, "forbidden", `${where}this event is not allowed for the signed-in customer`);
    }
  }
  return null;
}
