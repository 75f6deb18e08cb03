// Issue 12, Cloudflare side, on a real engine: the packed package in a fresh Worker project
// bundled by the repo's wrangler, run in workerd through miniflare's Queues simulation, against
// autumn-mock on 127.0.0.1.
//
// (a) A consumer on a queue with Cloudflare's default `max_retries = 3` facing an outage much
//     longer than 3 deliveries — 503 + Retry-After, then 403 (a proxy's page), then 401 (the
//     consumer's key refused) — loses nothing: before a message runs out of retries it is
//     re-sent to the same queue as a copy with the same key (`requeue`), so nothing reaches the
//     dead letter queue, and once Autumn is back every event is recorded exactly once.
// (b) A producer (`queue: { cloudflareQueue }`) whose attempt meets 429 / 503 with
//     `Retry-After: 60` hands the event to the queue at once instead of sleeping through a
//     Worker's `waitUntil` (30 s); and all its in-call attempts plus the hand-over fit one
//     deadline (~15 s) even when each attempt is slow.
//
// The Worker (WORKER_JS below) records what it did: deliveries, acks, retries, copies, the DLQ.
//
// Needs: scripts/build.sh (pkg/) and `cargo build --release -p autumn-mock`.
// Run:   node --test --test-reporter=tap tests/workerd/
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { buildWorker, guarded, mockEvents, onAbnormalExit, removeDir, requireBuilt, startMock, startWorker, tail, tempDir, uid, withTimeout } from "./harness.mjs";

const SECRET_KEY = "am_sk_test_queue_outage_12a";
const WRONG_KEY = "am_sk_test_refused_by_autumn_12a";
const SETUP_TIMEOUT_MS = 120_000;
const QUEUE = "autumn-track-outage";
const DLQ = "autumn-track-outage-dlq";
const SINK = "autumn-track-sink";
// Cloudflare's default: a message is delivered at most 4 times, then moved to the DLQ.
const MAX_RETRIES = 3;
// The attempts of an outage phase per event: more than max_retries allows one message.
const DELIVERIES_PER_PHASE = MAX_RETRIES + 2;

const WRANGLER_TOML = `name = "autumn-track-queue-outage-test"
main = "src/index.js"
compatibility_date = "2025-09-01"

[[queues.producers]]
binding = "OUTAGE_Q"
queue = "${QUEUE}"

[[queues.producers]]
binding = "SINK_Q"
queue = "${SINK}"

[[queues.consumers]]
queue = "${QUEUE}"
max_retries = ${MAX_RETRIES}
dead_letter_queue = "${DLQ}"

[[queues.consumers]]
queue = "${DLQ}"
`;

const WORKER_JS = `import { AutumnTracker, handleTrackQueue } from "autumn-track";

const state = { deliveries: [], acks: [], retries: [], requeues: [], dlq: [], reports: [], handovers: [], errors: [] };
const keyOf = (b) => (b && typeof b === "object" && typeof b.idempotencyKey === "string" ? b.idempotencyKey : null);
let consumerKey = null; // null: the right one (env)
let producer;

// A producer binding that records what the tracker hands over (with when), then forwards it.
function recorded(binding, label) {
  const note = (body, options) => state.handovers.push({ label, key: keyOf(body), body, delaySeconds: options?.delaySeconds, at: Date.now() });
  return {
    send(body, options) {
      note(body, options);
      return binding.send(body, options);
    },
    sendBatch(msgs, options) {
      for (const m of msgs) note(m.body, m);
      return binding.sendBatch(msgs, options);
    },
  };
}

export default {
  async fetch(request, env, ctx) {
    const { pathname } = new URL(request.url);
    const body = request.method === "POST" ? await request.json() : {};
    try {
      if (pathname === "/track") {
        producer ??= new AutumnTracker({
          secretKey: env.AUTUMN_SECRET_KEY, baseUrl: env.AUTUMN_URL, maxRetries: 0, timeoutMs: 2000,
          /*NEW*/ confirmAfterMs: 2000, /*END*/
          queue: { cloudflareQueue: env.OUTAGE_Q },
        });
        return Response.json({ ok: true, result: await producer.track(body.input) });
      }
      if (pathname === "/handover/track") {
        // A fresh producer per request, with the tracker's defaults unless the test says.
        const t = new AutumnTracker({ secretKey: env.AUTUMN_SECRET_KEY, baseUrl: env.AUTUMN_URL, ...body.opts, queue: { cloudflareQueue: recorded(env.SINK_Q, body.label) } });
        if (body.background) {
          // The response does not wait: the attempts and the hand-over run in waitUntil.
          t.withContext(ctx).track(body.input).catch((e) => state.errors.push(String(e?.message ?? e)));
          return Response.json({ ok: true }, { status: 202 });
        }
        return Response.json({ ok: true, result: await t.track(body.input) });
      }
      if (pathname === "/consumer-key") {
        consumerKey = body.wrong ? env.WRONG_KEY : null;
        return Response.json({ ok: true });
      }
      if (pathname === "/raw") {
        await env.OUTAGE_Q.send(body.message, { contentType: "json" });
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
        state.dlq.push({ key: keyOf(m.body), attempts: m.attempts, body: m.body });
        m.ack();
      }
      return;
    }
    // Keys copied to the queue in this run: their originals are acked as copied, not delivered.
    const copied = new Set();
    const messages = batch.messages.map((m) => {
      state.deliveries.push({ key: keyOf(m.body), attempts: m.attempts, requeued: m.body?.requeued ?? 0, at: Date.now() });
      return {
        id: m.id, timestamp: m.timestamp, body: m.body, attempts: m.attempts,
        ack() {
          state.acks.push({ key: keyOf(m.body), attempts: m.attempts, copied: copied.has(keyOf(m.body)) });
          m.ack();
        },
        retry(o) {
          state.retries.push({ key: keyOf(m.body), attempts: m.attempts, delaySeconds: o?.delaySeconds });
          m.retry(o);
        },
      };
    });
    const requeue = {
      send(b, o) {
        copied.add(keyOf(b));
        state.requeues.push({ key: keyOf(b), requeued: b?.requeued, delaySeconds: o?.delaySeconds, body: b });
        return env.OUTAGE_Q.send(b, o);
      },
      sendBatch(ms, o) {
        for (const m of ms) {
          copied.add(keyOf(m.body));
          state.requeues.push({ key: keyOf(m.body), requeued: m.body?.requeued, delaySeconds: m.delaySeconds, body: m.body });
        }
        return env.OUTAGE_Q.sendBatch(ms, o);
      },
    };
    state.reports.push(await handleTrackQueue({ queue: batch.queue, messages }, {
      secretKey: consumerKey ?? env.AUTUMN_SECRET_KEY,
      baseUrl: env.AUTUMN_URL,
      timeoutMs: 2000,
      /*NEW*/ requeue, maxRetries: ${MAX_RETRIES}, confirmAfterMs: 2000, /*END*/
      retryDelaySeconds: 1,
      maxRetryDelaySeconds: 1,
    }));
  },
};
`;

async function faults(mockUrl, body) {
  const r = await fetch(`${mockUrl}/_mock/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`POST /_mock/faults: ${r.status} ${await r.text()}`);
}
const stats = async (mockUrl) => (await fetch(`${mockUrl}/_mock/stats`)).json();

describe("issue 12, Cloudflare: a long outage under max_retries = 3, and producers that hand over at once (workerd, miniflare Queues)", () => {
  let work, mock, mf, built;
  let workerdPids = [];
  let unregisterExitCleanup;
  const workerLog = [];
  const diagnostics = () =>
    [
      `--- worker / workerd / miniflare log (${workerLog.length}) ---`, tail(workerLog.join("\n"), 5000),
      `--- autumn-mock log ---`, tail(mock?.log() ?? "", 2000),
    ].join("\n");
  let setupError, setupDone;
  const withDiagnostics = guarded(diagnostics, () => ({ error: setupError }), { timeoutMs: 90_000 });

  async function call(path, body) {
    const res = await mf.dispatchFetch(`http://worker.test${path}`, body === undefined
      ? {}
      : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const text = await res.text();
    try {
      return { httpStatus: res.status, ...JSON.parse(text) };
    } catch {
      throw new Error(`the Worker answered ${res.status} with non-JSON: ${text.slice(0, 2000)}`);
    }
  }

  /** Polls `check(state)` (which may throw to fail at once) until it returns true. */
  async function until(check, what, ms = 60_000) {
    const end = Date.now() + ms;
    for (;;) {
      const s = await call("/state");
      if (check(s)) return s;
      if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; state ${JSON.stringify({ deliveries: s.deliveries.slice(-20), requeues: s.requeues.length, dlq: s.dlq.map((d) => [d.key, d.attempts]), reports: s.reports.slice(-3) })}`);
      await sleep(200);
    }
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
    work = tempDir("autumn-track-queue-outage-");
    unregisterExitCleanup = onAbnormalExit(() => {
      for (const pid of workerdPids) {
        try { process.kill(pid, "SIGKILL"); } catch { /* already gone */ }
      }
      mock?.kill();
      removeDir(work);
    });
    const [b, m] = await Promise.all([
      buildWorker(work, WORKER_JS, { wranglerToml: WRANGLER_TOML }),
      startMock(["--auto-create-customers", "--secret-key", SECRET_KEY]),
    ]);
    built = b;
    mock = m;
    ({ mf, workerdPids } = await startWorker(built.outDir, {
      log: workerLog,
      bindings: { AUTUMN_URL: mock.url, AUTUMN_SECRET_KEY: SECRET_KEY, WRONG_KEY },
      options: {
        queueProducers: { OUTAGE_Q: { queueName: QUEUE }, SINK_Q: { queueName: SINK } },
        queueConsumers: {
          // As wrangler.toml says, with a short batch timeout so the suite is quick.
          [QUEUE]: { maxBatchSize: 100, maxBatchTimeout: 0.25, maxRetries: MAX_RETRIES, deadLetterQueue: DLQ },
          [DLQ]: { maxBatchSize: 100, maxBatchTimeout: 0.25 },
        },
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

  test("(a) max_retries = 3, an outage of 503s, then 403s, then 401s, each longer than 3 deliveries: nothing reaches the DLQ, the consumer re-sends copies with the same key, then every event is recorded exactly once", withDiagnostics(async (t) => {
    const customer = uid("cus_outage");
    await faults(mock.url, { clear: true, outage: true, outage_mode: "503", retry_after_secs: 1 });
    const t0 = Date.now();
    const results = [];
    for (let i = 0; i < 6; i++) results.push((await call("/track", { input: { customerId: customer, featureId: "messages", value: i + 1, properties: { i } } })).result);
    const t1 = Date.now();
    for (const r of results) {
      assert.equal(r?.status, "queued", JSON.stringify(r));
      assert.equal(r.queue, "cloudflare", JSON.stringify(r));
    }
    const keys = results.map((r) => r.idempotencyKey);
    const noGoodInDlq = (s) => {
      const dead = s.dlq.filter((d) => keys.includes(d.key));
      if (dead.length) throw new Error(`events reached the dead letter queue: ${JSON.stringify(dead.map((d) => [d.key, d.attempts]))}`);
    };
    const base = await stats(mock.url);

    // Each phase lasts until every event was delivered more often than max_retries allows one
    // message, and was re-sent as a copy at least once within it.
    const phase = async (name, from) => {
      const s = await until((s) => {
        noGoodInDlq(s);
        const del = s.deliveries.slice(from.deliveries);
        const cop = s.requeues.slice(from.requeues);
        return keys.every((k) => del.filter((d) => d.key === k).length >= DELIVERIES_PER_PHASE && cop.some((c) => c.key === k));
      }, `phase ${name}: ${DELIVERIES_PER_PHASE} deliveries and a copy of every event`);
      assert.equal(s.acks.filter((a) => keys.includes(a.key) && !a.copied).length, 0, `phase ${name}: an event was acked as delivered`);
      return { deliveries: s.deliveries.length, requeues: s.requeues.length };
    };
    let mark = { deliveries: 0, requeues: 0 };
    mark = await phase("503", mark);
    // A proxy's 403 page in front of Autumn (html_403), then Autumn refusing the consumer's key.
    await faults(mock.url, { clear: true, html_403: 1 });
    mark = await phase("403", mark);
    await faults(mock.url, { clear: true });
    await call("/consumer-key", { wrong: true });
    mark = await phase("401", mark);

    // Autumn is back: every event delivered, once.
    await call("/consumer-key", { wrong: false });
    const s = await until((s) => {
      noGoodInDlq(s);
      return keys.every((k) => s.acks.some((a) => a.key === k && !a.copied));
    }, "every event acked after the outage");
    const st = await stats(mock.url);
    const delta = (k) => st.faults_injected[k] - (base.faults_injected[k] ?? 0);
    t.diagnostic(`deliveries ${s.deliveries.length}, copies ${s.requeues.length}, retries ${s.retries.length}, consumer runs ${s.reports.length}; mock: ${st.requests - base.requests} requests, outage ${delta("outage")}, html_403 ${delta("html_403")}`);
    assert.ok(delta("outage") > 0 && delta("html_403") > 0, "the outage never reached Autumn's side");

    for (const [i, k] of keys.entries()) {
      const evs = await mockEvents(mock.url, k);
      assert.equal(evs.length, 1, `${k}: recorded ${evs.length} times`);
      assert.equal(evs[0].customer_id, customer);
      assert.equal(evs[0].value, i + 1);
      assert.equal(evs[0].via, "batch");
      assert.ok(evs[0].timestamp >= t0 - 1000 && evs[0].timestamp <= t1 + 1000, `timestamp ${evs[0].timestamp} is the time of track() (${t0}..${t1}), copies included`);
    }
    // No message got past max_retries: Cloudflare never had to move one.
    assert.ok(s.deliveries.every((d) => !keys.includes(d.key) || d.attempts <= MAX_RETRIES + 1), JSON.stringify(s.deliveries.filter((d) => d.attempts > MAX_RETRIES + 1)));
    assert.ok(!workerLog.some((l) => /Moving message .* to dead letter queue/.test(l)), "miniflare moved a message to the DLQ");
    // Copies keep the key, the body and the age; they say they are copies.
    for (const c of s.requeues.filter((c) => keys.includes(c.key))) {
      assert.equal(c.body.idempotencyKey, c.key);
      assert.equal(JSON.parse(c.body.body).idempotency_key, c.key);
      assert.ok(c.body.createdAt >= t0 - 1000 && c.body.createdAt <= t1 + 1000, JSON.stringify(c.body));
      assert.ok(Number.isInteger(c.requeued) && c.requeued >= 1, JSON.stringify(c));
    }
    // 401/403 were never refusals: nothing reported as refused, nothing dead-lettered.
    assert.deepEqual(s.reports.flatMap((r) => r.refused), []);
    assert.equal(s.reports.reduce((n, r) => n + (r.deadLettered ?? 0), 0), 0);
    assert.ok(!JSON.stringify(s.reports).includes(WRONG_KEY), "the consumer's key is in a report");
  }), { timeoutMs: 150_000 });

  /** Tracks through a fresh producer whose hand-overs are recorded under `label`. */
  async function handover(label, opts, what) {
    const input = { customerId: uid("cus_handover"), featureId: "messages", value: 3 };
    const t0 = performance.now();
    const r = await withTimeout(call("/handover/track", { label, input, opts }), 40_000, `${what}: track()`);
    return { ms: performance.now() - t0, r };
  }

  /** The recorded hand-over, re-sent to the consumer's queue once Autumn is well: recorded once. */
  async function deliveredLater(key) {
    const s = await call("/state");
    const h = s.handovers.find((x) => x.key === key);
    assert.ok(h, `no hand-over of ${key}`);
    await call("/raw", { message: h.body });
    await until((s) => s.acks.some((a) => a.key === key && !a.copied), `${key} delivered by the consumer`, 30_000);
    const evs = await mockEvents(mock.url, key);
    assert.equal(evs.length, 1, `${key} recorded ${evs.length} times`);
    assert.equal(evs[0].value, 3);
  }

  for (const [status, fault] of [[429, { rate_limit_429: 1 }], [503, { error_503: 1 }]]) {
    test(`(b) a producer meeting ${status} + Retry-After: 60 hands the event to the queue at once (< 15 s, one attempt), instead of sleeping; the consumer delivers it once`, withDiagnostics(async () => {
      await faults(mock.url, { clear: true, ...fault, retry_after_secs: 60 });
      const base = await stats(mock.url);
      const { ms, r } = await handover(`ra60-${status}`, {}, `${status} + Retry-After: 60`);
      const st = await stats(mock.url);
      await faults(mock.url, { clear: true });
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(r.result.status, "queued", JSON.stringify(r.result));
      assert.equal(r.result.queue, "cloudflare", JSON.stringify(r.result));
      assert.equal(r.result.reason, status === 429 ? "rate_limited" : "server_error");
      assert.ok(ms < 15_000, `track() took ${Math.round(ms)} ms: it slept on Retry-After instead of handing over`);
      assert.equal(st.requests - base.requests, 1, "one attempt: a 60 s Retry-After does not fit the call's deadline");
      const s = await call("/state");
      const h = s.handovers.filter((x) => x.key === r.result.idempotencyKey);
      assert.equal(h.length, 1, JSON.stringify(s.handovers));
      assert.equal(h[0].body.idempotencyKey, r.result.idempotencyKey);
      await deliveredLater(r.result.idempotencyKey);
    }), { timeoutMs: 90_000 });
  }

  test("(b) in waitUntil (withContext): the response comes at once and a 503 + Retry-After: 60 is handed over well inside waitUntil's 30 s", withDiagnostics(async () => {
    await faults(mock.url, { clear: true, error_503: 1, retry_after_secs: 60 });
    const key = uid("bg_ra60");
    const t0 = performance.now();
    const r = await call("/handover/track", { label: "bg", background: true, input: { customerId: uid("cus_bg"), featureId: "messages", value: 3, idempotencyKey: key } });
    assert.equal(r.httpStatus, 202);
    const s = await until((s) => s.handovers.some((h) => h.key === key) || s.errors.length > 0, "the background hand-over", 40_000);
    const ms = performance.now() - t0;
    await faults(mock.url, { clear: true });
    assert.deepEqual(s.errors, []);
    assert.ok(ms < 15_000, `handed over after ${Math.round(ms)} ms`);
    await deliveredLater(key);
  }), { timeoutMs: 90_000 });

  test("(b) slow attempts (3 s each, 503 + Retry-After: 1, maxRetries 10): the attempts and the hand-over fit one deadline (< 16 s), not 10 retries", withDiagnostics(async () => {
    await faults(mock.url, { clear: true, error_503: 1, retry_after_secs: 1, latency_ms: 3000 });
    const base = await stats(mock.url);
    const { ms, r } = await handover("deadline", { maxRetries: 10, timeoutMs: 4000 }, "slow attempts");
    const st = await stats(mock.url);
    await faults(mock.url, { clear: true });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.result.status, "queued", JSON.stringify(r.result));
    assert.equal(r.result.queue, "cloudflare", JSON.stringify(r.result));
    const attempts = st.faults_injected.error_503 - base.faults_injected.error_503;
    // ~15 s for the attempts (each needs its timeout's room before the deadline), then the
    // hand-over: well inside a Worker's 30 s waitUntil.
    assert.ok(ms < 16_000, `track() took ${Math.round(ms)} ms over ${attempts} attempts`);
    assert.ok(attempts >= 2 && attempts <= 4, `${attempts} attempts: retried within the deadline, and only there`);
    await deliveredLater(r.result.idempotencyKey);
  }), { timeoutMs: 90_000 });
});
