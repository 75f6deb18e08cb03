// Issue 12, the app's route: `handleTrackRequest` (the package's Node entry) behind a plain
// node:http server on 127.0.0.1, with a fake session (`identify` reads it), and a browser-style
// tracker (the package's AutumnTracker, no key, `headers: { Authorization }`, a memory queue)
// sending to it, as a page's tracker does. Autumn is autumn-mock on 127.0.0.1.
//
// (c) Events tracked for cus_a while the route could not reach Autumn, then drained after the
//     session changed to cus_b, are never recorded as cus_b: the route answers 403
//     customer_mismatch and the tracker keeps them queued (no dead letters) until cus_a signs in
//     again — then they are recorded once each, as cus_a. A signed-out drain (identify → null,
//     the route's 401) keeps them queued too.
//
// Needs: scripts/build.sh (pkg/) and `cargo build --release -p autumn-mock`.
// Run:   node --test --test-reporter=tap tests/workerd/
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { AutumnTracker, handleTrackRequest } from "../../js/node.js";
import { mockEvents, requireBuilt, startMock, uid } from "./harness.mjs";

const SECRET_KEY = "am_sk_test_proxy_session_12c";
const PREFIX = "/api/autumn";

async function faults(mockUrl, body) {
  const r = await fetch(`${mockUrl}/_mock/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`POST /_mock/faults: ${r.status} ${await r.text()}`);
}

async function eventsFor(mockUrl, customerId) {
  const r = await fetch(`${mockUrl}/_mock/events?customer_id=${encodeURIComponent(customerId)}`);
  return (await r.json()).events;
}

describe("issue 12, the route: a session change or a sign-out never bills the wrong customer, and loses nothing (Node, handleTrackRequest)", () => {
  let mock, server, routeUrl;
  /** Who the app's session says is signed in (null: nobody). */
  const session = { who: null };
  /** Every answer of the route: { path, status, code, keys }. */
  const answers = [];

  before(async () => {
    requireBuilt();
    mock = await startMock(["--auto-create-customers", "--secret-key", SECRET_KEY]);
    server = createServer(async (req, res) => {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const body = Buffer.concat(chunks);
      const request = new Request(`http://app.test${req.url}`, {
        method: req.method,
        headers: Object.entries(req.headers).filter(([, v]) => typeof v === "string"),
        ...(body.length && { body }),
      });
      const response = await handleTrackRequest(request, {
        secretKey: SECRET_KEY,
        baseUrl: mock.url,
        // The app's own session check: the cookie or token says who is signed in.
        identify: (r) => (r.headers.get("authorization") === "Bearer the-session" ? session.who : null),
        pathPrefix: PREFIX,
        maxRetries: 0,
      });
      const text = await response.text();
      let keys = [];
      try {
        const parsed = JSON.parse(body.toString("utf8"));
        keys = (Array.isArray(parsed) ? parsed : [parsed]).map((e) => e?.idempotency_key);
      } catch { /* not JSON */ }
      let code;
      try { code = JSON.parse(text).code; } catch { /* not JSON */ }
      answers.push({ path: req.url, status: response.status, code, keys });
      res.writeHead(response.status, Object.fromEntries(response.headers));
      res.end(text);
    });
    await new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    routeUrl = `http://127.0.0.1:${server.address().port}`;
  });

  after(async () => {
    await new Promise((r) => (server ? server.close(r) : r()));
    await mock?.stop();
  });

  /** A browser-style tracker: no key, the app's session header, its own memory queue. */
  const browserTracker = () =>
    new AutumnTracker({ baseUrl: `${routeUrl}${PREFIX}`, headers: { Authorization: "Bearer the-session" }, queue: "memory", queueName: uid("q"), maxRetries: 0 });

  /** Tracks three events for `customer` while the route cannot reach Autumn: all queued. */
  async function trackDuringOutage(tracker, customer) {
    await faults(mock.url, { clear: true, outage: true });
    const results = [];
    try {
      for (let i = 1; i <= 3; i++) results.push(await tracker.track({ customerId: customer, featureId: "messages", value: i }));
    } finally {
      await faults(mock.url, { clear: true });
    }
    for (const r of results) assert.deepEqual({ status: r.status, reason: r.reason }, { status: "queued", reason: "server_error" }, JSON.stringify(r));
    const keys = results.map((r) => r.idempotencyKey);
    for (const k of keys) assert.equal((await mockEvents(mock.url, k)).length, 0, "recorded during the outage");
    assert.ok(answers.some((a) => a.status === 503 && keys.includes(a.keys[0])), "the route did not answer 503 during the outage");
    return keys;
  }

  /** flush()es until the route has answered `status` for a request carrying one of `keys`. */
  async function drainUntilAnswer(tracker, keys, status, what) {
    const from = answers.length;
    for (let i = 0; i < 150; i++) {
      await tracker.flush();
      if (answers.slice(from).some((a) => a.status === status && a.keys.some((k) => keys.includes(k)))) return answers.slice(from);
      await sleep(100);
    }
    throw new Error(`${what}: the route never answered ${status} to the drain; answers ${JSON.stringify(answers.slice(from))}`);
  }

  /** flush()es until nothing is queued. */
  async function drainAll(tracker) {
    for (let i = 0; i < 300; i++) {
      await tracker.flush();
      const p = await tracker.pending();
      if (p.queued === 0 && p.inFlight === 0) return p;
      await sleep(100);
    }
    return tracker.pending();
  }

  async function assertRecordedOnceAs(keys, customer) {
    for (const [i, k] of keys.entries()) {
      const evs = await mockEvents(mock.url, k);
      assert.equal(evs.length, 1, `${k}: recorded ${evs.length} times`);
      assert.equal(evs[0].customer_id, customer, `${k} recorded for ${evs[0].customer_id}`);
      assert.equal(evs[0].value, i + 1);
    }
  }

  test("(c) queued for cus_a, drained while cus_b is signed in: 403 customer_mismatch, kept queued, nothing recorded as cus_b; recorded once as cus_a when cus_a is back", async () => {
    const cusA = uid("cus_a");
    const cusB = uid("cus_b");
    const tracker = browserTracker();
    try {
      session.who = cusA;
      const keys = await trackDuringOutage(tracker, cusA);

      // Another user signs in on the same browser; Autumn is reachable again.
      session.who = cusB;
      const seen = await drainUntilAnswer(tracker, keys, 403, "signed in as cus_b");
      const refusals = seen.filter((a) => a.status === 403);
      assert.ok(refusals.every((a) => a.code === "customer_mismatch"), JSON.stringify(refusals));
      assert.ok(!seen.some((a) => a.status >= 200 && a.status < 300 && a.keys.some((k) => keys.includes(k))), `the route accepted cus_a's events for cus_b: ${JSON.stringify(seen)}`);
      // As a queued drain sends them, directly: the route refuses, whatever the batch shape.
      const direct = await fetch(`${routeUrl}${PREFIX}/v1/balances.batch_track`, {
        method: "POST",
        headers: { authorization: "Bearer the-session", "content-type": "application/json" },
        body: JSON.stringify(keys.map((k, i) => ({ customer_id: cusA, feature_id: "messages", value: i + 1, idempotency_key: k }))),
      });
      assert.equal(direct.status, 403);
      assert.equal((await direct.json()).code, "customer_mismatch");
      const pending = await tracker.pending();
      assert.equal(pending.queued + pending.inFlight, 3, `kept queued: ${JSON.stringify(pending)}`);
      assert.deepEqual(await tracker.deadLetters(), [], "dead-lettered instead of kept");
      for (const k of keys) assert.equal((await mockEvents(mock.url, k)).length, 0, `${k} was recorded while cus_b was signed in`);
      assert.equal((await eventsFor(mock.url, cusB)).length, 0, "events were recorded for cus_b");

      // cus_a is back: the held events go, once each, for cus_a.
      session.who = cusA;
      const p = await drainAll(tracker);
      assert.deepEqual({ queued: p.queued, inFlight: p.inFlight }, { queued: 0, inFlight: 0 }, JSON.stringify(p));
      assert.deepEqual(await tracker.deadLetters(), []);
      await assertRecordedOnceAs(keys, cusA);
      assert.equal((await eventsFor(mock.url, cusB)).length, 0, "events were recorded for cus_b");
    } finally {
      tracker.close();
    }
  });

  test("(c) a signed-out drain (identify → null: 401 unauthorized) keeps the events queued, not dead letters; signed in again, they are recorded once", async () => {
    const cus = uid("cus_signed_out");
    const tracker = browserTracker();
    try {
      session.who = cus;
      const keys = await trackDuringOutage(tracker, cus);

      session.who = null;
      const seen = await drainUntilAnswer(tracker, keys, 401, "signed out");
      assert.ok(seen.filter((a) => a.status === 401).every((a) => a.code === "unauthorized"), JSON.stringify(seen));
      const pending = await tracker.pending();
      assert.equal(pending.queued + pending.inFlight, 3, `kept queued: ${JSON.stringify(pending)}`);
      assert.equal(pending.deadLetters, 0, JSON.stringify(pending));
      assert.deepEqual(await tracker.deadLetters(), [], "a 401 from the app's route dead-lettered the events");
      for (const k of keys) assert.equal((await mockEvents(mock.url, k)).length, 0);

      session.who = cus;
      const p = await drainAll(tracker);
      assert.deepEqual({ queued: p.queued, inFlight: p.inFlight }, { queued: 0, inFlight: 0 }, JSON.stringify(p));
      assert.deepEqual(await tracker.deadLetters(), []);
      await assertRecordedOnceAs(keys, cus);
    } finally {
      tracker.close();
    }
  });
});
