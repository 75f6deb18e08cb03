// handleTrackQueue's rules, case by case, in Node (the package's Node entry, built in pkg/)
// against autumn-mock on 127.0.0.1, with hand-made message batches: what the workerd suite
// (queue.test.mjs) cannot steer precisely. Each message records whether it was acked or
// retried, and with which delay.
//
// Needs: scripts/build.sh (pkg/) and `cargo build --release -p autumn-mock`.
// Run:   node --test --test-reporter=tap tests/workerd/
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { handleTrackQueue } from "../../js/node.js";
import { mockEvents, requireBuilt, startMock, uid } from "./harness.mjs";

const SECRET_KEY = "am_sk_test_queue_consumer_9d2";

async function faults(mockUrl, body) {
  const r = await fetch(`${mockUrl}/_mock/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`POST /_mock/faults: ${r.status} ${await r.text()}`);
}

/** A message as Cloudflare hands it over, carrying an event as AutumnTracker sends it. */
function message(event, { createdAt = Date.now(), attempts = 1, body } = {}) {
  const key = event?.idempotency_key;
  const m = {
    id: uid("msg"),
    timestamp: new Date(createdAt),
    attempts,
    body: body !== undefined ? body : { autumnTrack: 1, idempotencyKey: key, body: JSON.stringify(event), createdAt, reason: "server_error" },
    outcome: null,
    ack() {
      assert.equal(m.outcome, null, "settled twice");
      m.outcome = "ack";
    },
    retry(options) {
      assert.equal(m.outcome, null, "settled twice");
      m.outcome = { retry: options?.delaySeconds };
    },
  };
  return m;
}

const event = (extra = {}) => ({ customer_id: "cus_c", feature_id: "messages", value: 1, idempotency_key: uid("k"), ...extra });

/** A producer binding of "the same queue" (`requeue`): records the copies sent to it. */
function fakeQueue() {
  const sent = [];
  return {
    sent,
    async send(body, options) {
      sent.push({ body, options });
    },
  };
}

describe("handleTrackQueue (Node) → autumn-mock", () => {
  let mock;
  let requeue;
  const opts = () => ({ secretKey: SECRET_KEY, baseUrl: mock.url, requeue, retryDelaySeconds: 3, maxRetryDelaySeconds: 60 });

  beforeEach(() => {
    requeue = fakeQueue();
  });

  before(async () => {
    requireBuilt();
    mock = await startMock(["--auto-create-customers", "--secret-key", SECRET_KEY]);
  });
  after(async () => {
    await mock?.stop();
  });

  test("delivered: acked, recorded once with the message's exact body; the same key twice in a batch is sent once", async () => {
    const e = event({ value: 2.5, properties: { a: [1, "x"] }, timestamp: Date.now() - 60_000 });
    const a = message(e);
    const b = message(e); // Cloudflare delivers at least once
    const c = message(event());
    const r = await handleTrackQueue({ messages: [a, b, c] }, opts());
    assert.deepEqual([a.outcome, b.outcome, c.outcome], ["ack", "ack", "ack"]);
    assert.equal(r.delivered, 3);
    assert.equal(r.requests, 1);
    const [ev, ...rest] = await mockEvents(mock.url, e.idempotency_key);
    assert.equal(rest.length, 0);
    assert.equal(ev.value, 2.5);
    assert.equal(ev.timestamp, e.timestamp);
    assert.deepEqual(ev.properties, { a: [1, "x"] });
    assert.equal(ev.via, "batch");
    assert.equal(ev.headers["x-api-version"], "2.3.0");
  });

  test("a poison event among 40 is isolated by halving: the rest acked, the poison retried (no deadLetter)", async () => {
    const events = Array.from({ length: 40 }, () => event());
    events[27] = event({ feature_id: "no_such_feature" });
    const msgs = events.map((e) => message(e, { attempts: 2 }));
    const r = await handleTrackQueue({ messages: msgs }, opts());
    for (const [i, m] of msgs.entries()) {
      if (i === 27) assert.deepEqual(m.outcome, { retry: 6 }, "retried with backoff (3 s doubled for attempt 2)");
      else assert.equal(m.outcome, "ack");
    }
    assert.equal(r.refused.length, 1);
    assert.equal(r.refused[0].code, "feature_not_found");
    assert.equal(r.refused[0].idempotencyKey, events[27].idempotency_key);
    assert.ok(r.requests <= 2 * Math.ceil(Math.log2(40)) + 1, `${r.requests} requests`);
    for (const [i, e] of events.entries()) assert.equal((await mockEvents(mock.url, e.idempotency_key)).length, i === 27 ? 0 : 1);
  });

  test("429 and 503: retried after Retry-After; a second failure stops the run instead of hammering", async () => {
    await faults(mock.url, { clear: true, rate_limit_429: 1, retry_after_secs: 7 });
    const msgs = [message(event()), message(event())];
    const r = await handleTrackQueue({ messages: msgs }, { ...opts(), batchSize: 1 });
    await faults(mock.url, { clear: true });
    assert.deepEqual(msgs.map((m) => m.outcome), [{ retry: 7 }, { retry: 7 }]);
    assert.equal(r.requests, 1, "a 429 stops the run");
    assert.equal(r.retryReason.code, "rate_limited");

    await faults(mock.url, { clear: true, outage: true, retry_after_secs: 2 });
    const more = [message(event()), message(event()), message(event())];
    const r2 = await handleTrackQueue({ messages: more }, { ...opts(), batchSize: 1 });
    await faults(mock.url, { clear: true });
    assert.deepEqual(more.map((m) => m.outcome), [{ retry: 2 }, { retry: 2 }, { retry: 2 }]);
    assert.equal(r2.requests, 2, "two 503s in a row stop the run");
  });

  test("network errors: retried once the attempt must have ended (confirmAfterMs); recorded-then-dropped is counted once on the resend", async () => {
    const e = event();
    await faults(mock.url, { clear: true, scripts: { [e.idempotency_key]: ["drop_after_record"] } });
    const m = message(e, { attempts: 1 });
    // The dropped attempt may still be running at Autumn: not before confirmAfterMs (here 10 s,
    // the timeout), not the 3 s backoff.
    const r = await handleTrackQueue({ messages: [m] }, { ...opts(), confirmAfterMs: 10_000 });
    assert.deepEqual(m.outcome, { retry: 10 });
    assert.equal(r.retryReason.code, "network_error");
    assert.equal(requeue.sent.length, 0);
    const again = message(e, { attempts: 2 });
    await handleTrackQueue({ messages: [again] }, { ...opts(), confirmAfterMs: 10_000 });
    assert.equal(again.outcome, "ack");
    assert.equal((await mockEvents(mock.url, e.idempotency_key)).length, 1);
  });

  test("Autumn refusing the consumer's key: retried, not dead-lettered; the key is in no report", async () => {
    const letters = [];
    const m = message(event());
    const r = await handleTrackQueue({ messages: [m] }, { ...opts(), secretKey: "am_sk_test_wrong_key_1", deadLetter: (l) => letters.push(l) });
    assert.deepEqual(m.outcome, { retry: 3 });
    assert.equal(letters.length, 0);
    assert.equal(r.retryReason.code, "invalid_secret_key");
    assert.ok(!JSON.stringify(r).includes("am_sk_test_wrong_key_1"));
  });

  test("deadLetter: refusals, junk and expired events go there and are acked, never sent as delivered", async () => {
    const letters = [];
    const poison = event({ feature_id: "no_such_feature" });
    const old = event();
    const msgs = [
      message(poison),
      message(null, { body: "not ours" }),
      message(null, { body: { autumnTrack: 1, idempotencyKey: "k-mismatch", body: JSON.stringify(event()) } }),
      message(old, { createdAt: Date.now() - 24 * 3600_000 }),
    ];
    const r = await handleTrackQueue({ messages: msgs }, { ...opts(), deadLetter: async (l) => void letters.push(l) });
    assert.deepEqual(msgs.map((m) => m.outcome), ["ack", "ack", "ack", "ack"]);
    assert.equal(r.deadLettered, 4);
    assert.equal(r.delivered, 0);
    assert.deepEqual(letters.map((l) => l.code).sort(), ["expired", "feature_not_found", "invalid_message", "invalid_message"]);
    const p = letters.find((l) => l.code === "feature_not_found");
    assert.equal(p.status, 404);
    assert.equal(JSON.parse(p.body).idempotency_key, poison.idempotency_key);
    assert.equal(letters.find((l) => l.code === "expired").idempotencyKey, old.idempotency_key);
    assert.equal((await mockEvents(mock.url, old.idempotency_key)).length, 0, "an expired event is not resent");

    // A deadLetter that fails: the message is retried instead, not lost.
    const m = message(event({ feature_id: "no_such_feature" }));
    await handleTrackQueue({ messages: [m] }, { ...opts(), deadLetter: { send: async () => { throw new Error("dlq down"); } } });
    assert.deepEqual(m.outcome, { retry: 3 });
  });

  test("a timestamp Autumn calls future is resent once without it", async () => {
    const e = event({ timestamp: Date.now() + 3_600_000 });
    const m = message(e);
    await handleTrackQueue({ messages: [m] }, opts());
    assert.equal(m.outcome, "ack");
    const evs = await mockEvents(mock.url, e.idempotency_key);
    assert.equal(evs.length, 1);
    assert.equal(evs[0].timestamp, null);
  });

  test("wrong options throw (so Cloudflare retries the batch) and settle nothing", async () => {
    const m = message(event());
    await assert.rejects(handleTrackQueue({ messages: [m] }, { baseUrl: mock.url }), /secretKey/);
    await assert.rejects(handleTrackQueue({ messages: [m] }, { ...opts(), batchSize: 1001 }), /batchSize/);
    await assert.rejects(handleTrackQueue({ messages: [m] }, { ...opts(), dedLetter: 1 }), /unknown option dedLetter/);
    // No `requeue` (the producer binding of the same queue): a long outage would exhaust max_retries.
    await assert.rejects(handleTrackQueue({ messages: [m] }, { ...opts(), requeue: undefined }), /requeue/);
    await assert.rejects(handleTrackQueue({ messages: [m] }, { ...opts(), confirmAfterMs: 1000 }), /confirmAfterMs/);
    assert.equal(m.outcome, null);
  });
});
