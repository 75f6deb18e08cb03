// Issue 12, the consumer and a claim still held at Autumn: handleTrackQueue (the package's
// Node entry) against autumn-mock on 127.0.0.1, with hand-made messages redelivered as
// Cloudflare would — after the delay the consumer asked for.
//
// Autumn claims a key when a request starts and releases it when that request fails. While an
// attempt that got no answer is still running, its key is claimed: a single track then answers
// 409, and batch_track (what the consumer sends) drops the item silently and answers 200. Neither
// proves a recording — the held attempt may still fail and release the key. (d) such a message
// is not acked as delivered while the claim is held, and ends recorded exactly once.
//
// The mock's `hold:<ms>:500` script claims the key, stalls, then answers 500 and releases it.
//
// Needs: scripts/build.sh (pkg/) and `cargo build --release -p autumn-mock`.
// Run:   node --test --test-reporter=tap tests/workerd/
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { handleTrackQueue } from "../../js/node.js";
import { mockEvents, requireBuilt, startMock, uid } from "./harness.mjs";

const SECRET_KEY = "am_sk_test_consumer_held_12d";
const HOLD_MS = 2000;
// How long an attempt may run at Autumn: longer than the hold (that is its contract).
const CONFIRM_AFTER_MS = 3500;
const TIMEOUT_MS = 500;

async function faults(mockUrl, body) {
  const r = await fetch(`${mockUrl}/_mock/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`POST /_mock/faults: ${r.status} ${await r.text()}`);
}

/** A message as Cloudflare hands it over: records how it was settled, and when. */
function message(event, { attempts = 1, sentAt } = {}) {
  const createdAt = Date.now() - 1000;
  const m = {
    id: uid("msg"),
    timestamp: new Date(createdAt),
    attempts,
    body: { autumnTrack: 1, idempotencyKey: event.idempotency_key, body: JSON.stringify(event), createdAt, reason: "timeout", ...(sentAt !== undefined && { sentAt }) },
    outcome: null,
    settledAt: null,
    ack() {
      assert.equal(m.outcome, null, "settled twice");
      m.outcome = "ack";
      m.settledAt = Date.now();
    },
    retry(options) {
      assert.equal(m.outcome, null, "settled twice");
      m.outcome = { retry: options?.delaySeconds };
      m.settledAt = Date.now();
    },
  };
  return m;
}

describe("issue 12, the consumer: an attempt without an answer holds the key; no ack before it must have ended (Node, handleTrackQueue)", () => {
  let mock;
  const copies = [];
  const opts = () => ({
    secretKey: SECRET_KEY,
    baseUrl: mock.url,
    timeoutMs: TIMEOUT_MS,
    retryDelaySeconds: 1,
    maxRetryDelaySeconds: 1,
    /*NEW*/ confirmAfterMs: CONFIRM_AFTER_MS, requeue: { send: async (body, o) => void copies.push({ body, o }) }, /*END*/
  });

  before(async () => {
    requireBuilt();
    mock = await startMock(["--auto-create-customers", "--secret-key", SECRET_KEY]);
  });
  after(async () => {
    await mock?.stop();
  });

  /** Runs the consumer on `m`, then redelivers it (attempts + 1) after the delay it asked for, until acked. */
  async function deliverUntilAcked(m, event, releasedAt) {
    const history = [];
    for (let attempt = m.attempts; attempt <= m.attempts + 4; attempt++) {
      const msg = attempt === m.attempts ? m : message(event, { attempts: attempt, sentAt: m.body.sentAt });
      const r = await handleTrackQueue({ messages: [msg] }, opts());
      history.push({ attempt, outcome: msg.outcome, at: msg.settledAt, requests: r.requests, reason: r.retryReason?.code });
      if (msg.outcome === "ack") {
        // Acked: never while the held attempt could still fail and release the key.
        assert.ok(msg.settledAt >= releasedAt(), `acked at ${msg.settledAt}, before the held claim was released (${releasedAt()}): ${JSON.stringify(history)}`);
        return history;
      }
      assert.ok(msg.outcome && typeof msg.outcome === "object", JSON.stringify(history));
      await sleep(msg.outcome.retry * 1000);
    }
    throw new Error(`never acked: ${JSON.stringify(history)}`);
  }

  test("(d) the consumer's own attempt times out under a held claim (hold:2000:500, timeoutMs 500): retried only after confirmAfterMs, not acked on the duplicate answer while the claim is held; recorded exactly once", async () => {
    const event = { customer_id: uid("cus_held"), feature_id: "messages", value: 4, idempotency_key: uid("held") };
    await faults(mock.url, { clear: true, scripts: { [event.idempotency_key]: [`hold:${HOLD_MS}:500`] } });
    const t0 = Date.now();
    const m = message(event);
    const history = await deliverUntilAcked(m, event, () => t0 + HOLD_MS);
    assert.equal(history[0].reason, "timeout", JSON.stringify(history));
    assert.ok(history[0].outcome.retry >= Math.ceil(CONFIRM_AFTER_MS / 1000), `retried after ${history[0].outcome.retry} s, inside the window of the attempt that got no answer`);
    const evs = await mockEvents(mock.url, event.idempotency_key);
    assert.equal(evs.length, 1, `recorded ${evs.length} times: ${JSON.stringify(history)}`);
    assert.equal(evs[0].value, 4);
    assert.ok(evs[0].received_at >= t0 + HOLD_MS, "recorded by a resend after the held attempt failed");
    const st = await (await fetch(`${mock.url}/_mock/stats`)).json();
    assert.ok(st.faults_injected.hold_claim >= 1, JSON.stringify(st.faults_injected));
  });

  test("(d) the producer's attempt got no answer (sentAt) and its claim is still held (a track resend gets 409): the message is not batched nor acked during the hold; recorded exactly once", async () => {
    const event = { customer_id: uid("cus_held_p"), feature_id: "messages", value: 5, idempotency_key: uid("held_p") };
    await faults(mock.url, { clear: true, scripts: { [event.idempotency_key]: [`hold:${HOLD_MS}:500`] } });
    // The producer's inline attempt: it gives up after 300 ms; Autumn goes on holding the claim.
    const sentAt = Date.now();
    const producer = new AbortController();
    const attempt = fetch(`${mock.url}/v1/balances.track`, {
      method: "POST",
      headers: { authorization: `Bearer ${SECRET_KEY}`, "content-type": "application/json", "x-api-version": "2.3.0" },
      body: JSON.stringify(event),
      signal: producer.signal,
    }).catch(() => null);
    await sleep(300);
    producer.abort();
    await attempt;
    // The claim is held now: a single track of the key is a 409 that proves nothing.
    const probe = await fetch(`${mock.url}/v1/balances.track`, {
      method: "POST",
      headers: { authorization: `Bearer ${SECRET_KEY}`, "content-type": "application/json", "x-api-version": "2.3.0" },
      body: JSON.stringify(event),
    });
    assert.equal(probe.status, 409, "the claim should be held by the unanswered attempt");

    const m = message(event, { sentAt });
    const history = await deliverUntilAcked(m, event, () => sentAt + HOLD_MS);
    assert.equal(history[0].requests, 0, `sent while an attempt may still be running: ${JSON.stringify(history)}`);
    const evs = await mockEvents(mock.url, event.idempotency_key);
    assert.equal(evs.length, 1, `recorded ${evs.length} times: ${JSON.stringify(history)}`);
    assert.equal(evs[0].value, 5);
    assert.equal(evs[0].via, "batch");
  });
});
