// Runs inside a fresh project that installed the packed tarball: this is what a Node user gets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { AutumnTracker, TrackError, isTrackError } from "autumn-track";

const MOCK = process.env.AUTUMN_MOCK_URL;
const KEY = "am_sk_test_node_suite";
const uid = (p) => `${p}_${Math.random().toString(36).slice(2)}`;
const events = async (key) => (await (await fetch(`${MOCK}/_mock/events?idempotency_key=${key}`)).json()).events;

test("the mock URL is given", () => assert.ok(MOCK?.startsWith("http://127.0.0.1:"), MOCK));

test("the package ships only what it needs", () => {
  const pkg = JSON.parse(readFileSync(new URL("./node_modules/autumn-track/package.json", import.meta.url)));
  assert.equal(pkg.exports["."].node, "./js/node.js");
  assert.ok(!("dependencies" in pkg) || Object.keys(pkg.dependencies).length === 0, "no runtime dependencies");
});

test("tracks and returns Autumn's balance", async () => {
  const t = new AutumnTracker({ secretKey: KEY, baseUrl: MOCK });
  const customerId = uid("cus");
  const r = await t.track({ customerId, featureId: "messages", value: 2, properties: { plan: "pro", ratio: 0.1, big: 1e300 } });
  assert.equal(r.status, "delivered");
  assert.match(r.idempotencyKey, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(r.response.customer_id, customerId);
  assert.equal(r.response.balance.feature_id, "messages");
  const [ev, ...rest] = await events(r.idempotencyKey);
  assert.equal(rest.length, 0);
  assert.equal(ev.value, 2);
  assert.deepEqual(ev.properties, { plan: "pro", ratio: 0.1, big: 1e300 }, "non-integers survive the wire exactly");
  assert.equal(ev.headers.authorization, `Bearer ${KEY}`);
  assert.equal(ev.headers["x-api-version"], "2.3.0");
  // The key goes in the body only: Autumn's Idempotency-Key header claims are shared with its
  // other routes (a business id used there too would make this track a 409).
  assert.equal(ev.headers["idempotency-key"], undefined);
  assert.equal(ev.idempotency_key, r.idempotencyKey);
});

test("REST spellings work; a second send of a key is a duplicate", async () => {
  const t = new AutumnTracker({ secretKey: KEY, baseUrl: MOCK });
  const key = uid("k");
  const input = { customer_id: uid("cus"), event_name: "message_sent", idempotency_key: key };
  assert.equal((await t.track(input)).status, "delivered");
  assert.equal((await t.track(input)).status, "duplicate");
  assert.equal((await events(key)).length, 1);
});

test("errors are TrackError instances with codes", async () => {
  const t = new AutumnTracker({ secretKey: KEY, baseUrl: MOCK });
  await assert.rejects(t.track({ customerId: "", featureId: "messages" }), (e) => {
    assert.ok(e instanceof TrackError && e instanceof Error && isTrackError(e));
    assert.equal(e.name, "TrackError");
    assert.equal(e.code, "invalid_input");
    assert.equal(e.field, "customerId");
    return true;
  });
  await assert.rejects(t.track({ customerId: uid("c"), featureId: "nope_feature" }), (e) => {
    assert.equal(e.code, "feature_not_found");
    assert.equal(e.status, 404);
    assert.ok(e.idempotencyKey);
    return true;
  });
  assert.throws(() => new AutumnTracker({ secretKey: "am_pk_test_x" }), (e) => e instanceof TrackError && e.code === "invalid_options");
  assert.throws(() => new AutumnTracker({ secretkey: KEY }), (e) => e.field === "secretkey" && /did you mean `secretKey`/.test(e.message));
});

test("a secret key is fine on a server (no browser guard in Node)", () => {
  assert.doesNotThrow(() => new AutumnTracker({ secretKey: KEY }));
});

test("without a queue, network errors are retried, then reported as unavailable with the key", async () => {
  // A port nothing listens on (the mock's port + 1 is not guaranteed free; bind and close one).
  const net = await import("node:net");
  const port = await new Promise((res) => { const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); }); });
  const t = new AutumnTracker({ secretKey: KEY, baseUrl: `http://127.0.0.1:${port}`, maxRetries: 1, queue: "off" });
  await assert.rejects(t.track({ customerId: "c", featureId: "messages", idempotencyKey: "net-down-1" }), (e) => {
    assert.equal(e.code, "unavailable");
    assert.equal(e.idempotencyKey, "net-down-1");
    assert.match(e.message, /after 2 attempts/);
    assert.ok(!e.message.includes(KEY));
    return true;
  });
});

test("many concurrent track() calls all land once", async () => {
  const t = new AutumnTracker({ secretKey: KEY, baseUrl: MOCK });
  const customerId = uid("burst");
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => t.track({ customerId, featureId: "messages", properties: { i } })));
  assert.ok(results.every((r) => r.status === "delivered"));
  assert.equal(new Set(results.map((r) => r.idempotencyKey)).size, 200);
  const all = (await (await fetch(`${MOCK}/_mock/events?customer_id=${customerId}`)).json()).events;
  assert.equal(all.length, 200);
});

test("in Node the queue is in memory: it says so once, queues, and flush() delivers", async () => {
  const seen = [];
  const t = new AutumnTracker({ secretKey: KEY, baseUrl: MOCK, maxRetries: 1, queueName: uid("q"), onEvent: (e) => seen.push(e) });
  const key = uid("k503");
  await fetch(`${MOCK}/_mock/faults`, { method: "POST", body: JSON.stringify({ scripts: { [key]: ["503", "503", "503"] } }) });
  const r = await t.track({ customerId: uid("cus"), featureId: "messages", idempotencyKey: key });
  const { message, ...rest } = r;
  assert.deepEqual(rest, { status: "queued", idempotencyKey: key, reason: "server_error", storage: "memory" }, "and where it waits");
  assert.match(message, /HTTP 503/);
  const p = await t.pending();
  assert.equal(p.storage, "memory");
  assert.equal(p.queued, 1);
  let f;
  for (let i = 0; i < 40; i++) {
    f = await t.flush();
    if (f.remaining === 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(f.remaining, 0);
  assert.equal((await events(key)).length, 1, "recorded once");
  const types = seen.map((e) => e.type);
  assert.equal(types.filter((x) => x === "storage_fallback").length, 1, types.join());
  assert.ok(types.includes("queued") && types.includes("delivered"), types.join());
  assert.ok(!JSON.stringify(seen).includes(KEY), "the secret key never reaches the event hook");
  t.close();
});

test("a tracker garbage-collected without close() leaves no timer behind to fire into freed code", async () => {
  const { setFlagsFromString } = await import("node:v8");
  const { runInNewContext } = await import("node:vm");
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc");
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const net = await import("node:net");
  const port = await new Promise((res) => { const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); }); });
  const errors = [];
  const onError = (e) => errors.push(String(e?.stack || e));
  process.on("uncaughtException", onError);
  try {
    // The server is down: the event is queued in memory and a retry timer is set (~1 s).
    const ref = await (async () => {
      const t = new AutumnTracker({ secretKey: KEY, baseUrl: `http://127.0.0.1:${port}`, queueName: uid("gc"), maxRetries: 0 });
      const r = await t.track({ customerId: "c", featureId: "messages" });
      assert.equal(r.status, "queued");
      return new WeakRef(t);
    })();
    // (deref() keeps its target alive to the end of the current job: collect in the next one.)
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      await sleep(0);
      gc();
      await sleep(20);
      alive = ref.deref() !== undefined;
    }
    assert.equal(alive, false, "the tracker was collected");
    await sleep(2_500); // past the retry timer
    assert.deepEqual(errors, []);
  } finally {
    process.off("uncaughtException", onError);
  }
});
