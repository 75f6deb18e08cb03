// `handleTrackRequest`, the route browser trackers talk to, in a Cloudflare Worker as a user
// would ship it: the packed package installed in a fresh Worker project, bundled by the repo's
// wrangler (`deploy --dry-run --outdir`), run in workerd through miniflare, forwarding to
// autumn-mock on 127.0.0.1. The Worker (harness.mjs, PROXY_WORKER_JS) is
//
//   handleTrackRequest(request, { secretKey: env.AUTUMN_SECRET_KEY, baseUrl: env.AUTUMN_URL,
//     identify, allowedOrigins: ["http://app.test"], rateLimit: { limit: 5, windowMs: 60000 },
//     pathPrefix: "/api/autumn" })
//
// with `Bearer user-1` → customer `cus_user_1` (`Bearer user-<x>` → `cus_user_<x>`, so each
// test has its own rate-limit window). Requests are what a browser tracker sends: Autumn's
// snake_case body with its idempotency_key, the Idempotency-Key header, the app's Authorization.
//
// Needs: scripts/build.sh (pkg/) and `cargo build --release -p autumn-mock`.
// Run:   node --test --test-reporter=tap tests/workerd/
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { PROXY_WORKER_JS, buildWorker, mockEvents, mockFaults, onAbnormalExit, removeDir, requireBuilt, startMock, startWorker, tail, tempDir, uid, guarded, withTimeout } from "./harness.mjs";

const SECRET_KEY = "am_sk_test_proxy_suite_3f9c2e";
// Well-formed, but not the one the mock accepts: Autumn answers 401 invalid_secret_key.
const WRONG_SECRET_KEY = "am_sk_test_not_this_one_77a1";
const APP = "http://app.test";
const TRACK = "/api/autumn/v1/balances.track";
const BATCH = "/api/autumn/v1/balances.batch_track";
const SETUP_TIMEOUT_MS = 120_000;

describe("handleTrackRequest in a Cloudflare Worker (wrangler bundle, workerd via miniflare) → autumn-mock", () => {
  let work, mock, mf, built;
  let workerdPids = [];
  let unregisterExitCleanup;
  const workerLog = [];
  /** Every answer the Worker gave, for the secret-key check. */
  const seen = [];

  const diagnostics = () =>
    [
      `--- worker / workerd / miniflare log (${workerLog.length}) ---`, tail(workerLog.join("\n"), 4000),
      `--- autumn-mock log ---`, tail(mock?.log() ?? "", 3000),
      `--- wrangler deploy --dry-run output ---`, tail(built?.wranglerLog ?? "", 2000),
    ].join("\n");

  let setupError, setupDone;
  const withDiagnostics = guarded(diagnostics, () => ({ error: setupError }));

  /**
   * Sends a request to the Worker as a browser tracker would. `user` sets `Authorization:
   * Bearer <user>` (null: none); `body` is JSON-encoded unless it is a string or a stream.
   * Resolves { status, headers, text, json }.
   */
  async function call(path, { method = "POST", user = null, origin = null, headers = {}, body } = {}) {
    const h = { ...headers };
    if (user) h.authorization = `Bearer ${user}`;
    if (origin) h.origin = origin;
    const init = { method, headers: h };
    if (body !== undefined) {
      if (body instanceof ReadableStream) {
        init.body = body;
        init.duplex = "half";
      } else {
        init.body = typeof body === "string" ? body : JSON.stringify(body);
        h["content-type"] ??= "application/json";
        h.accept ??= "application/json";
        h["x-api-version"] ??= "2.3.0";
      }
    }
    const res = await mf.dispatchFetch(`http://worker.test${path}`, init);
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    const out = { status: res.status, headers: res.headers, text, json };
    seen.push({ path, status: res.status, headers: [...res.headers], text });
    return out;
  }

  /** One event as the browser tracker sends it to /v1/balances.track. */
  function track(user, body, extra = {}) {
    const key = body.idempotency_key;
    return call(TRACK, { user, body, headers: key ? { "idempotency-key": key } : {}, ...extra });
  }

  before(async () => {
    try {
      setupDone = setup();
      await withTimeout(setupDone, SETUP_TIMEOUT_MS, "setup");
    } catch (e) {
      setupError = e;
    }
  });

  async function setup() {
    requireBuilt();
    work = tempDir("autumn-track-proxy-");
    unregisterExitCleanup = onAbnormalExit(() => {
      for (const pid of workerdPids) {
        try { process.kill(pid, "SIGKILL"); } catch { /* already gone */ }
      }
      mock?.kill();
      removeDir(work);
    });
    const [b, m] = await Promise.all([
      buildWorker(work, PROXY_WORKER_JS, { name: "autumn-track-proxy-test" }),
      startMock(["--auto-create-customers", "--secret-key", SECRET_KEY]),
    ]);
    built = b;
    mock = m;
    ({ mf, workerdPids } = await startWorker(built.outDir, {
      log: workerLog,
      bindings: {
        AUTUMN_URL: mock.url,
        AUTUMN_SECRET_KEY: SECRET_KEY,
        WRONG_SECRET_KEY,
        ALLOWED_ORIGINS: APP,
        RATE_LIMIT: "5",
      },
    }));
  }

  after(async () => {
    await withTimeout(Promise.resolve(setupDone).catch(() => {}), 60_000, "setup").catch(() => {});
    await mf?.dispose().catch(() => {});
    await mock?.stop();
    removeDir(work);
    unregisterExitCleanup?.();
  });

  test("wrangler bundled the proxy from the workerd entry", withDiagnostics(async () => {
    assert.match(built.bundle, /node_modules\/autumn-track\/js\/proxy\.js/, "js/proxy.js is not in the bundle");
    assert.match(built.bundle, /node_modules\/autumn-track\/js\/workerd\.js/, "wrangler did not pick the `workerd` export condition");
    assert.doesNotMatch(built.bundle, /node_modules\/autumn-track\/js\/(node|browser)\.js/, "another entry point got bundled too");
  }));

  test("no or an unknown Authorization: 401 unauthorized, nothing sent to Autumn", withDiagnostics(async () => {
    const key = uid("px_401");
    for (const user of [null, "somebody-else x"]) {
      const r = await track(user, { customer_id: "cus_user_1", feature_id: "messages", idempotency_key: key }, { origin: APP });
      assert.equal(r.status, 401, r.text);
      assert.equal(r.json?.code, "unauthorized", r.text);
      assert.equal(typeof r.json.message, "string");
      // An allowed origin can read the refusal (and so can stop retrying).
      assert.equal(r.headers.get("access-control-allow-origin"), APP);
    }
    assert.equal((await mockEvents(mock.url, key)).length, 0);
  }));

  test("an event for another customer than the caller: 403 customer_mismatch, nothing sent; the caller's own is recorded with the browser's key", withDiagnostics(async () => {
    // The body names someone else (a queue replayed after another user signed in on this
    // browser): never rewritten to the caller, never sent.
    const foreign = uid("px_foreign");
    for (const claim of [{ customer_id: "someone_else" }, { customerId: "someone_else" }]) {
      const r = await track("user-1", { ...claim, feature_id: "messages", value: 2, idempotency_key: foreign });
      assert.equal(r.status, 403, r.text);
      assert.equal(r.json?.code, "customer_mismatch", r.text);
      assert.equal(typeof r.json.message, "string");
    }
    assert.equal((await mockEvents(mock.url, foreign)).length, 0, "the foreign event reached Autumn");
    const claimed = await (await fetch(`${mock.url}/_mock/events?customer_id=someone_else`)).json();
    assert.equal(claimed.count, 0, "an event was recorded for the customer the body claimed");

    // The caller's own event (snake_case, camelCase, or without a customer): recorded for the
    // caller, with the browser's idempotency key in the body (no Idempotency-Key header).
    const key = uid("px_own");
    const r = await track("user-1", { customer_id: "cus_user_1", feature_id: "messages", value: 2, idempotency_key: key, properties: { via: "proxy" } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.customer_id, "cus_user_1", "Autumn's answer is passed through");
    assert.equal(r.json.value, 2);
    const events = await mockEvents(mock.url, key);
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.equal(events[0].customer_id, "cus_user_1");
    assert.equal(events[0].feature_id, "messages");
    assert.deepEqual(events[0].properties, { via: "proxy" });
    assert.equal(events[0].idempotency_key, key);
    assert.equal(events[0].headers["idempotency-key"], undefined, "the key goes in the body only");
    assert.equal(events[0].headers.authorization, `Bearer ${SECRET_KEY}`, "the Worker's key, not the browser's Authorization, goes to Autumn");
    for (const body of [{ customerId: "cus_user_1" }, {}]) {
      const k = uid("px_own_other_spelling");
      const r2 = await track("user-1", { ...body, feature_id: "messages", idempotency_key: k });
      assert.equal(r2.status, 200, r2.text);
      const ev = await mockEvents(mock.url, k);
      assert.equal(ev.length, 1);
      assert.equal(ev[0].customer_id, "cus_user_1");
    }
  }));

  test("CORS: a preflight from the allowed origin gets 204 and the headers; another origin gets 403", withDiagnostics(async () => {
    const ok = await call(TRACK, {
      method: "OPTIONS",
      origin: APP,
      headers: { "access-control-request-method": "POST", "access-control-request-headers": "content-type,authorization,idempotency-key,x-api-version,x-app-trace" },
    });
    assert.equal(ok.status, 204, ok.text);
    assert.equal(ok.headers.get("access-control-allow-origin"), APP);
    assert.match(ok.headers.get("access-control-allow-methods"), /\bPOST\b/);
    const allowed = ok.headers.get("access-control-allow-headers").toLowerCase().split(/\s*,\s*/);
    for (const h of ["content-type", "accept", "x-api-version", "idempotency-key", "authorization", "x-app-trace"]) assert.ok(allowed.includes(h), `${h} not in ${allowed}`);
    assert.ok(Number(ok.headers.get("access-control-max-age")) > 0);
    assert.match(ok.headers.get("vary") ?? "", /Origin/);

    const batchOk = await call(BATCH, { method: "OPTIONS", origin: APP, headers: { "access-control-request-method": "POST" } });
    assert.equal(batchOk.status, 204);

    const evil = await call(TRACK, { method: "OPTIONS", origin: "http://evil.test", headers: { "access-control-request-method": "POST" } });
    assert.equal(evil.status, 403, evil.text);
    assert.equal(evil.headers.get("access-control-allow-origin"), null);

    // A POST from another origin (a form riding on cookies, a script that skipped the
    // preflight) is refused before anything is sent.
    const key = uid("px_evil");
    const post = await track("user-cors", { customer_id: "cus_user_cors", feature_id: "messages", idempotency_key: key }, { origin: "http://evil.test" });
    assert.equal(post.status, 403, post.text);
    assert.equal(post.json?.code, "origin_not_allowed", post.text);
    assert.equal((await mockEvents(mock.url, key)).length, 0);

    // An allowed origin's POST carries the CORS answer headers.
    const good = await track("user-cors", { customer_id: "cus_user_cors", feature_id: "messages", idempotency_key: uid("px_cors_ok") }, { origin: APP });
    assert.equal(good.status, 200, good.text);
    assert.equal(good.headers.get("access-control-allow-origin"), APP);
    assert.match(good.headers.get("access-control-expose-headers") ?? "", /Retry-After/i);
  }));

  test("an invalid event: 400 invalid_inputs naming the field, nothing sent", withDiagnostics(async () => {
    const key = uid("px_400");
    const r = await track("user-invalid", { customer_id: "cus_user_invalid", idempotency_key: key, value: 1 });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.code, "invalid_inputs");
    assert.equal(r.json.field, "featureId");
    assert.ok(r.json.message.length > 0);
    const bad = await track("user-invalid", { feature_id: "messages", value: "3", idempotency_key: uid("px_400b") });
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.json.field, "value");
    const notJson = await call(TRACK, { user: "user-invalid", body: "{not json" });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.json.code, "invalid_json");
    assert.equal((await mockEvents(mock.url, key)).length, 0);
  }));

  test("an upstream 503 is retried inside the Worker: 200, recorded once", withDiagnostics(async () => {
    const key = uid("px_503");
    await mockFaults(mock.url, { [key]: ["503"] });
    const r = await track("user-retry", { customer_id: "cus_user_retry", feature_id: "messages", idempotency_key: key });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.customer_id, "cus_user_retry");
    assert.equal((await mockEvents(mock.url, key)).length, 1);
  }));

  test("an upstream that keeps failing: 503 upstream_unavailable + Retry-After; the browser's resend with the key lands once", withDiagnostics(async () => {
    const key = uid("px_down");
    await mockFaults(mock.url, { [key]: ["503", "503", "503", "503", "503"] });
    const t0 = performance.now();
    const r = await track("user-down", { customer_id: "cus_user_down", feature_id: "messages", idempotency_key: key });
    const ms = performance.now() - t0;
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.code, "upstream_unavailable");
    assert.equal(r.headers.get("retry-after"), "1");
    assert.equal((await mockEvents(mock.url, key)).length, 0);
    // maxRetries 2 (the default): 3 attempts, 2 waits of the mock's Retry-After (1 s).
    const left = (await (await fetch(`${mock.url}/_mock/faults`)).json()).scripts[key];
    assert.deepEqual(left, ["503", "503"], "the proxy should have made exactly 3 upstream attempts");
    assert.ok(ms < 10_000, `the browser was held ${Math.round(ms)} ms`);
    // Autumn is back; the browser's queue resends the same body and key.
    await mockFaults(mock.url, { [key]: [] });
    const again = await track("user-down", { customer_id: "cus_user_down", feature_id: "messages", idempotency_key: key });
    assert.equal(again.status, 200, again.text);
    assert.equal((await mockEvents(mock.url, key)).length, 1);
  }));

  test("the same key twice: 200, then 409 duplicate_idempotency_key; recorded once", withDiagnostics(async () => {
    const key = uid("px_dup");
    const body = { customer_id: "cus_user_dup", feature_id: "messages", idempotency_key: key };
    const first = await track("user-dup", body);
    assert.equal(first.status, 200, first.text);
    const second = await track("user-dup", body);
    assert.equal(second.status, 409, second.text);
    assert.equal(second.json.code, "duplicate_idempotency_key");
    assert.equal((await mockEvents(mock.url, key)).length, 1);
  }));

  test("a batch of 3: 200 {success:true}, all 3 recorded for the caller; one item for someone else: 403 customer_mismatch, nothing recorded", withDiagnostics(async () => {
    const keys = [uid("px_b0"), uid("px_b1"), uid("px_b2")];
    const items = [
      { customer_id: "cus_user_batch", feature_id: "messages", idempotency_key: keys[0], timestamp: Date.now() - 5000 },
      { customerId: "cus_user_batch", event_name: "message_sent", value: 3, idempotency_key: keys[1] },
      { feature_id: "api_calls", idempotency_key: keys[2], properties: { n: 1 } },
    ];
    const r = await call(BATCH, { user: "user-batch", body: items });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { success: true });
    for (const k of keys) {
      const events = await mockEvents(mock.url, k);
      assert.equal(events.length, 1, `${k}: ${JSON.stringify(events)}`);
      assert.equal(events[0].customer_id, "cus_user_batch");
    }

    const mixed = [uid("px_bm0"), uid("px_bm1"), uid("px_bm2")];
    const m = await call(BATCH, {
      user: "user-batch-mixed",
      body: [
        { customer_id: "cus_user_batch_mixed", feature_id: "messages", idempotency_key: mixed[0] },
        { customer_id: "someone_else", feature_id: "messages", idempotency_key: mixed[1] },
        { feature_id: "messages", idempotency_key: mixed[2] },
      ],
    });
    assert.equal(m.status, 403, m.text);
    assert.equal(m.json.code, "customer_mismatch");
    assert.match(m.json.message, /^items\[1\]: /);
    for (const k of mixed) assert.equal((await mockEvents(mock.url, k)).length, 0, k);
  }));

  test("a batch with one invalid item: 400 naming the item, nothing recorded", withDiagnostics(async () => {
    const keys = [uid("px_bi0"), uid("px_bi1"), uid("px_bi2")];
    const items = [
      { feature_id: "messages", idempotency_key: keys[0] },
      { feature_id: "messages", idempotency_key: keys[1], value: Number.MAX_VALUE, propertiez: {} },
      { feature_id: "messages", idempotency_key: keys[2] },
    ];
    const r = await call(BATCH, { user: "user-batch-invalid", body: items });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.code, "invalid_inputs");
    assert.match(r.json.message, /^items\[1\]: /);
    assert.equal(r.json.field, "propertiez");
    for (const k of keys) assert.equal((await mockEvents(mock.url, k)).length, 0, k);
    const empty = await call(BATCH, { user: "user-batch-invalid", body: [] });
    assert.equal(empty.status, 400, empty.text);
  }));

  test("a batch Autumn refuses an item of, or cannot take now: that status, so the browser isolates or resends", withDiagnostics(async () => {
    const nf = await call(BATCH, { user: "user-batch-refused", body: [{ feature_id: "messages", idempotency_key: uid("px_br0") }, { feature_id: "no_such_feature", idempotency_key: uid("px_br1") }] });
    assert.equal(nf.status, 404, nf.text);
    assert.equal(nf.json.code, "feature_not_found");
    assert.match(nf.json.message, /^items\[1\]: /);

    const down = uid("px_bd");
    await mockFaults(mock.url, { [down]: ["503", "503", "503"] });
    const r = await call(BATCH, { user: "user-batch-refused", body: [{ feature_id: "messages", idempotency_key: down }] });
    assert.equal(r.status, 503, r.text);
    assert.equal(r.headers.get("retry-after"), "1");
    assert.equal(r.json.code, "upstream_unavailable");
  }));

  test("a body over 1 MiB: 413, by Content-Length or while reading a stream", withDiagnostics(async () => {
    const big = JSON.stringify({ feature_id: "messages", properties: { pad: "x".repeat(1_100_000) } });
    const r = await call(TRACK, { user: "user-big", body: big });
    assert.equal(r.status, 413, r.text);
    assert.equal(r.json.code, "payload_too_large");
    // Chunked, no Content-Length: caught while reading.
    const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream({
      pull(c) {
        if (sent++ < 20) c.enqueue(chunk);
        else c.close();
      },
    });
    const s = await call(TRACK, { user: "user-big", body: stream, headers: { "content-type": "application/json" } });
    assert.equal(s.status, 413, s.text);
  }));

  test("rate limit: the 6th request of one identity within the window gets 429 + Retry-After", withDiagnostics(async () => {
    const keys = [];
    for (let i = 0; i < 5; i++) {
      keys.push(uid("px_rl"));
      const r = await track("user-rl", { feature_id: "messages", idempotency_key: keys[i] });
      assert.equal(r.status, 200, `request ${i + 1}: ${r.text}`);
    }
    const key = uid("px_rl_over");
    const over = await track("user-rl", { feature_id: "messages", idempotency_key: key }, { origin: APP });
    assert.equal(over.status, 429, over.text);
    assert.match(over.headers.get("content-type") ?? "", /^text\/plain/);
    const wait = Number(over.headers.get("retry-after"));
    assert.ok(Number.isInteger(wait) && wait >= 1 && wait <= 60, `Retry-After: ${over.headers.get("retry-after")}`);
    assert.equal(over.headers.get("access-control-allow-origin"), APP, "the browser must be able to read Retry-After");
    assert.equal((await mockEvents(mock.url, key)).length, 0);
    // Another identity is not affected.
    const other = await track("user-rl-other", { feature_id: "messages", idempotency_key: uid("px_rl_other") });
    assert.equal(other.status, 200, other.text);
  }));

  test("routing: other paths 404, other methods 405", withDiagnostics(async () => {
    assert.equal((await call("/api/autumn/v1/customers", { user: "user-route", body: {} })).status, 404);
    assert.equal((await call("/elsewhere/v1/balances.track", { user: "user-route", body: {} })).status, 404);
    const get = await call(TRACK, { method: "GET", user: "user-route" });
    assert.equal(get.status, 405);
    assert.match(get.headers.get("allow") ?? "", /POST/);
  }));

  test("a key Autumn refuses: 502 proxy_misconfigured (the browser keeps the event), the key not shown", withDiagnostics(async () => {
    const key = uid("px_badkey");
    const r = await call(`/bad-key${TRACK}`, { user: "user-badkey", body: { feature_id: "messages", idempotency_key: key }, headers: { "idempotency-key": key } });
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.code, "proxy_misconfigured");
    assert.ok(!r.text.includes(WRONG_SECRET_KEY));
    assert.equal((await mockEvents(mock.url, key)).length, 0);
  }));

  test("Node ≥ 20: the installed package's node entry serves the same route (Request in, Response out)", withDiagnostics(async () => {
    // Resolved as Node resolves `import "autumn-track"` in that project: the `node` condition.
    const entry = createRequire(join(built.app, "package.json")).resolve("autumn-track");
    assert.match(entry, /node_modules\/autumn-track\/js\/node\.js$/);
    const { handleTrackRequest } = await import(pathToFileURL(entry).href);
    const options = {
      secretKey: SECRET_KEY,
      baseUrl: mock.url,
      // One customer, or the ids a user of several organisations may bill (the first is the default).
      identify: (req) => ({ "Bearer user-node": "cus_user_node", "Bearer user-multi": ["cus_multi_a", "cus_multi_b"] })[req.headers.get("authorization")] ?? null,
      allowedOrigins: [APP],
    };
    const send = async (path, init) => {
      const res = await handleTrackRequest(new Request(`https://app.example${path}`, init), options);
      const text = await res.text();
      seen.push({ path: `node:${path}`, status: res.status, headers: [...res.headers], text });
      return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) : undefined };
    };
    const key = uid("px_node");
    const post = (body, headers = {}) => ({ method: "POST", headers: { authorization: "Bearer user-node", "content-type": "application/json", origin: APP, ...headers }, body: JSON.stringify(body) });
    const foreign = await send(TRACK, post({ customer_id: "someone_else", feature_id: "messages", idempotency_key: key }));
    assert.equal(foreign.status, 403, foreign.text);
    assert.equal(foreign.json.code, "customer_mismatch");
    const ok = await send(TRACK, post({ customer_id: "cus_user_node", feature_id: "messages", idempotency_key: key }));
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.customer_id, "cus_user_node");
    assert.equal(ok.headers.get("access-control-allow-origin"), APP);
    const dup = await send(TRACK, post({ feature_id: "messages", idempotency_key: key }));
    assert.equal(dup.status, 409, dup.text);
    const batchKeys = [uid("px_node_b"), uid("px_node_b")];
    const batch = await send(BATCH, post(batchKeys.map((k) => ({ feature_id: "messages", idempotency_key: k }))));
    assert.equal(batch.status, 200, batch.text);
    const nobody = await send(TRACK, post({ feature_id: "messages" }, { authorization: "Bearer someone" }));
    assert.equal(nobody.status, 401);
    const multi = [uid("px_multi_b"), uid("px_multi_default"), uid("px_multi_other")];
    const asB = await send(TRACK, post({ customer_id: "cus_multi_b", feature_id: "messages", idempotency_key: multi[0] }, { authorization: "Bearer user-multi" }));
    assert.equal(asB.status, 200, asB.text);
    const asDefault = await send(TRACK, post({ feature_id: "messages", idempotency_key: multi[1] }, { authorization: "Bearer user-multi" }));
    assert.equal(asDefault.status, 200, asDefault.text);
    const asOther = await send(TRACK, post({ customer_id: "cus_user_node", feature_id: "messages", idempotency_key: multi[2] }, { authorization: "Bearer user-multi" }));
    assert.equal(asOther.status, 403, asOther.text);
    assert.equal(asOther.json.code, "customer_mismatch");
    assert.deepEqual((await mockEvents(mock.url, multi[0])).map((e) => e.customer_id), ["cus_multi_b"]);
    assert.deepEqual((await mockEvents(mock.url, multi[1])).map((e) => e.customer_id), ["cus_multi_a"]);
    assert.equal((await mockEvents(mock.url, multi[2])).length, 0);
    const pre = await send(TRACK, { method: "OPTIONS", headers: { origin: APP, "access-control-request-method": "POST" } });
    assert.equal(pre.status, 204);
    for (const k of [key, ...batchKeys]) {
      const events = await mockEvents(mock.url, k);
      assert.equal(events.length, 1, k);
      assert.equal(events[0].customer_id, "cus_user_node");
    }
  }));

  test("the secret key never appears in any answer (body or header) nor the Worker's log", withDiagnostics(async () => {
    assert.ok(seen.length >= 30, `only ${seen.length} answers were checked`);
    for (const s of seen) {
      const all = `${s.text}\n${s.headers.map(([k, v]) => `${k}: ${v}`).join("\n")}`;
      for (const secret of [SECRET_KEY, WRONG_SECRET_KEY]) assert.ok(!all.includes(secret), `${s.status} ${s.path} shows a secret key:\n${all.slice(0, 2000)}`);
    }
    const log = workerLog.join("\n");
    for (const secret of [SECRET_KEY, WRONG_SECRET_KEY]) assert.ok(!log.includes(secret), "the Worker logged a secret key");
  }));
});
