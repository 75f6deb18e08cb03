// Durable delivery at the edge through Cloudflare Queues, on a real engine: the packed package
// in a fresh Worker project bundled by the repo's wrangler (`deploy --dry-run --outdir`, with
// queue producers and consumers in its wrangler.toml), run in workerd through miniflare with
// its Queues simulation, against autumn-mock on 127.0.0.1 with injected faults.
//
// Producer: `new AutumnTracker({ …, queue: { cloudflareQueue: env.TRACK_QUEUE } })`; while
// Autumn is down, track() hands events to the queue (`queued`, `queue: "cloudflare"`).
// Consumer: `handleTrackQueue(batch, { secretKey, baseUrl })` in the Worker's queue() handler,
// which drains through /v1/balances.batch_track and acks only what Autumn accepted.
// The Worker is tests/workerd/queue-worker.mjs.
//
// Needs: scripts/build.sh (pkg/) and `cargo build --release -p autumn-mock`.
// Run:   node --test --test-reporter=tap tests/workerd/
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { buildWorker, mockEvents, onAbnormalExit, removeDir, requireBuilt, startMock, startWorker, tail, tempDir, uid, guarded, withTimeout } from "./harness.mjs";
import { CONFIRM_AFTER_MS, DLQ, QUEUE, QUEUE_B, QUEUE_WORKER_JS, REFUSED, WRANGLER_TOML } from "./queue-worker.mjs";

const SECRET_KEY = "am_sk_test_queue_suite_51c0";
const SETUP_TIMEOUT_MS = 120_000;
// Cloudflare's max_retries for the main queue: room for the outage and the injected faults (the
// poison event uses them all before the DLQ).
const MAX_RETRIES = 15;

async function faults(mockUrl, body) {
  const r = await fetch(`${mockUrl}/_mock/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`POST /_mock/faults: ${r.status} ${await r.text()}`);
}

describe("Cloudflare Queues: producer and handleTrackQueue consumer in workerd (miniflare Queues) → autumn-mock", () => {
  let work, mock, mf, built;
  let workerdPids = [];
  let unregisterExitCleanup;
  const workerLog = [];

  const diagnostics = () =>
    [
      `--- worker / workerd / miniflare log (${workerLog.length}) ---`, tail(workerLog.join("\n"), 5000),
      `--- autumn-mock log ---`, tail(mock?.log() ?? "", 2000),
      `--- wrangler deploy --dry-run output ---`, tail(built?.wranglerLog ?? "", 2000),
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

  /** Polls `check(state)` until it returns true (or the test's own timeout fails it). */
  async function until(check, what) {
    let s;
    for (let i = 0; ; i++) {
      s = await call("/state");
      if (check(s)) return s;
      if (i % 40 === 39) workerLog.push(`[test] still waiting for ${what}`);
      await sleep(250);
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
    work = tempDir("autumn-track-queue-");
    unregisterExitCleanup = onAbnormalExit(() => {
      for (const pid of workerdPids) {
        try { process.kill(pid, "SIGKILL"); } catch { /* already gone */ }
      }
      mock?.kill();
      removeDir(work);
    });
    const [b, m] = await Promise.all([
      buildWorker(work, QUEUE_WORKER_JS, { wranglerToml: WRANGLER_TOML }),
      // The poison event below is an unknown feature (404 feature_not_found).
      startMock(["--auto-create-customers", "--secret-key", SECRET_KEY, "--seed", "7"]),
    ]);
    built = b;
    mock = m;
    ({ mf, workerdPids } = await startWorker(built.outDir, {
      log: workerLog,
      bindings: { AUTUMN_URL: mock.url, AUTUMN_SECRET_KEY: SECRET_KEY, MAX_RETRIES: String(MAX_RETRIES) },
      // What wrangler.toml says, with a shorter batch timeout so the suite is quick.
      options: {
        queueProducers: { TRACK_QUEUE: { queueName: QUEUE }, QUEUE_B: { queueName: QUEUE_B }, REFUSED: { queueName: REFUSED } },
        queueConsumers: {
          [QUEUE]: { maxBatchSize: 100, maxBatchTimeout: 0.25, maxRetries: MAX_RETRIES, deadLetterQueue: DLQ },
          [QUEUE_B]: { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 0 },
          [DLQ]: { maxBatchSize: 100, maxBatchTimeout: 1 },
          [REFUSED]: { maxBatchSize: 100, maxBatchTimeout: 1 },
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

  test("wrangler bundled the workerd entry with js/cfqueue.js, and accepted the queue bindings", withDiagnostics(async () => {
    assert.match(built.bundle, /node_modules\/autumn-track\/js\/cfqueue\.js/, "js/cfqueue.js is not in the bundle");
    assert.match(built.bundle, /node_modules\/autumn-track\/js\/workerd\.js/, "wrangler did not pick the `workerd` export condition");
    assert.match(built.wranglerLog, /TRACK_QUEUE/, "wrangler did not list the queue producer binding");
  }));

  test("outage: events go to the queue; then 500/503/429/record-then-drop for the consumer: every event recorded once, the poison never acked", withDiagnostics(async (t) => {
    const customer = uid("cus_q");
    const t0 = Date.now();
    // Autumn is down for the tracker (503s, then dropped connections): nothing can be delivered inline.
    await faults(mock.url, { clear: true, outage: true, outage_mode: "503" });
    const results = [];
    for (let i = 0; i < 12; i++) {
      results.push((await call("/track", { input: { customerId: customer, featureId: "messages", value: i + 1, properties: { i } } })).result);
    }
    await faults(mock.url, { outage: true, outage_mode: "reset" });
    for (let i = 12; i < 24; i++) {
      results.push((await call("/track", { input: { customerId: customer, featureId: "messages", value: i + 1, properties: { i } } })).result);
    }
    // The poison: Autumn refuses it for good (unknown feature), in the middle of the backlog.
    const poison = (await call("/track", { input: { customerId: customer, featureId: "no_such_feature" } })).result;
    for (let i = 24; i < 30; i++) {
      results.push((await call("/track", { input: { customerId: customer, featureId: "messages", value: i + 1, properties: { i } } })).result);
    }
    // And through withContext: the response does not wait; the hand-over is in waitUntil.
    const bg = [];
    for (let i = 30; i < 33; i++) {
      const key = uid("bg");
      bg.push(key);
      const r = await call("/track", { background: true, input: { customerId: customer, featureId: "messages", value: i + 1, idempotencyKey: key, properties: { i } } });
      assert.equal(r.httpStatus, 202);
    }
    const t1 = Date.now();

    for (const r of [...results, poison]) {
      assert.equal(r?.status, "queued", JSON.stringify(r));
      assert.equal(r.queue, "cloudflare", JSON.stringify(r));
    }
    assert.deepEqual(new Set(results.slice(0, 12).map((r) => r.reason)), new Set(["server_error"]));
    assert.deepEqual(new Set(results.slice(12).map((r) => r.reason)), new Set(["network_error"]));
    const keys = [...results.map((r) => r.idempotencyKey), ...bg];
    for (const k of keys) assert.equal((await mockEvents(mock.url, k)).length, 0, "nothing reached Autumn inline");

    // Autumn comes back, misbehaving: 500s, 503s, 429s and answers lost after recording — a
    // scripted fault for each event (a batch request takes its first event's script), random
    // ones besides.
    const kinds = ["drop_after_record", "500", "503", "429"];
    const before = await (await fetch(`${mock.url}/_mock/stats`)).json();
    await faults(mock.url, {
      outage: false, error_500: 0.05, error_503: 0.05, rate_limit_429: 0.03, drop_after_record: 0.05, seed: 11,
      scripts: Object.fromEntries([...keys, poison.idempotencyKey].map((k, i) => [k, [kinds[i % 4]]])),
    });

    const s = await until((s) => {
      const goodInDlq = s.dlq.filter((d) => keys.includes(d.body?.idempotencyKey));
      if (goodInDlq.length) throw new Error(`good events reached the DLQ (max_retries used up): ${JSON.stringify(goodInDlq.map((d) => [d.body.idempotencyKey, d.attempts]))}; reports ${JSON.stringify(s.reports.map((r) => [r.delivered, r.retried, r.requests, r.retryReason?.code]))}`);
      return keys.every((k) => s.acks.some((a) => a.key === k)) && s.dlq.some((d) => d.body?.idempotencyKey === poison.idempotencyKey);
    }, "every event acked and the poison in the DLQ");
    const stats = await (await fetch(`${mock.url}/_mock/stats`)).json();
    await faults(mock.url, { clear: true });
    const injected = Object.fromEntries(Object.entries(stats.faults_injected).map(([k, v]) => [k, v - (before.faults_injected[k] ?? 0)]));
    t.diagnostic(`consumer runs ${s.reports.length}, batch requests ${s.reports.reduce((n, r) => n + r.requests, 0)}, acks ${s.acks.length}, retries ${s.retries.length}, faults injected ${JSON.stringify(injected)}, duplicates dropped in batches ${stats.duplicates_dropped_in_batch - before.duplicates_dropped_in_batch}`);
    assert.ok(injected.error_500 + injected.error_503 + injected.rate_limit_429 > 0 && injected.drop_after_record > 0, JSON.stringify(injected));

    // Every event recorded exactly once, with its key and original time.
    for (const [i, k] of keys.entries()) {
      const evs = await mockEvents(mock.url, k);
      assert.equal(evs.length, 1, `${k}: recorded ${evs.length} times`);
      assert.equal(evs[0].value, i + 1);
      assert.equal(evs[0].via, "batch");
      assert.equal(evs[0].headers.authorization, `Bearer ${SECRET_KEY}`);
      assert.ok(evs[0].timestamp >= t0 - 1000 && evs[0].timestamp <= t1 + 1000, `timestamp ${evs[0].timestamp} is the time of track() (${t0}..${t1})`);
    }
    // Nothing acked that Autumn did not accept: every acked key is recorded; the poison never acked.
    for (const a of s.acks) assert.ok(keys.includes(a.key), `acked ${a.key}, which Autumn did not record`);
    assert.ok(!s.acks.some((a) => a.key === poison.idempotencyKey), "the poison was acked");
    assert.equal((await mockEvents(mock.url, poison.idempotencyKey)).length, 0);
    // The poison was isolated (its own refusal, reported), retried until max_retries, then Cloudflare's DLQ.
    const refusals = s.reports.flatMap((r) => r.refused).filter((r) => r.idempotencyKey === poison.idempotencyKey);
    assert.ok(refusals.length >= 1, JSON.stringify(s.reports));
    assert.equal(refusals[0].code, "feature_not_found");
    assert.equal(refusals[0].status, 404);
    const dead = s.dlq.find((d) => d.body?.idempotencyKey === poison.idempotencyKey);
    assert.ok(dead, "the poison reached the dead letter queue");
    assert.equal(JSON.parse(dead.body.body).feature_id, "no_such_feature", "the DLQ keeps the whole event");
    // Faults were met and retried (the run is not vacuous), honouring Retry-After (1 s) on 429/503
    // and the backoff (1 s); an attempt that got no answer (a dropped connection: the producer's
    // or the consumer's) waits out what is left of the confirmation window (CONFIRM_AFTER_MS).
    assert.ok(s.retries.some((r) => keys.includes(r.key)), "no good event was ever retried: the faults did not bite");
    const windowS = Math.ceil(CONFIRM_AFTER_MS / 1000);
    assert.ok(s.retries.every((r) => Number.isInteger(r.delaySeconds) && r.delaySeconds >= 0 && r.delaySeconds <= Math.max(1, windowS)), JSON.stringify(s.retries.filter((r) => !(r.delaySeconds <= 1)).slice(0, 5)));
    // The window was waited for the events whose attempt got no answer (the record-then-drop ones).
    assert.ok(s.retries.some((r) => keys.includes(r.key) && r.delaySeconds === windowS), "no retry waited out the confirmation window after a dropped connection");
    // The secret key is in no report.
    assert.ok(!JSON.stringify(s.reports).includes(SECRET_KEY));
    // The tracker said where each event went.
    const queuedEvents = s.events.filter((e) => e.type === "queued" && e.storage === "cloudflare");
    for (const k of keys) assert.ok(queuedEvents.some((e) => e.idempotencyKey === k), `no queued event for ${k}`);
  }), { timeoutMs: 120_000 });

  test("garbage and damaged messages are not acked as delivered: retried into the DLQ and reported", withDiagnostics(async () => {
    const marker = uid("junk");
    await call("/raw", { message: `hello ${marker}`, contentType: "text" });
    await call("/raw", { message: { autumnTrack: 1, idempotencyKey: marker, body: "{not json" } });
    const s = await until((s) => s.dlq.filter((d) => JSON.stringify(d.body).includes(marker)).length === 2, "both junk messages in the DLQ");
    assert.ok(!s.acks.some((a) => a.key === marker));
    const reported = s.reports.flatMap((r) => r.refused).filter((r) => r.code === "invalid_message");
    assert.ok(reported.some((r) => r.idempotencyKey === marker), JSON.stringify(reported));
  }), { timeoutMs: 60_000 });

  test("with deadLetter: a refused event and a junk message go there (acked, not delivered); the good one is delivered", withDiagnostics(async () => {
    const customer = uid("cus_b");
    await faults(mock.url, { clear: true, outage: true });
    const good = (await call("/b/track", { input: { customerId: customer, featureId: "messages", value: 3 } })).result;
    const bad = (await call("/b/track", { input: { customerId: customer, featureId: "no_such_feature" } })).result;
    assert.equal(good.queue, "cloudflare");
    assert.equal(bad.queue, "cloudflare");
    const junk = uid("junk_b");
    await call("/raw", { queue: "b", message: { hello: junk } });
    await faults(mock.url, { clear: true });
    const s = await until((s) => s.refused.some((r) => r.idempotencyKey === bad.idempotencyKey) && s.refused.some((r) => r.original?.hello === junk), "the refused event and the junk in the deadLetter queue");
    const junkLetter = s.refused.find((r) => r.original?.hello === junk);
    assert.equal(junkLetter.code, "invalid_message");
    assert.equal((await mockEvents(mock.url, good.idempotencyKey)).length, 1);
    assert.equal((await mockEvents(mock.url, bad.idempotencyKey)).length, 0);
    const letter = s.refused.find((r) => r.idempotencyKey === bad.idempotencyKey);
    assert.equal(letter.code, "feature_not_found");
    assert.equal(letter.status, 404);
    assert.equal(JSON.parse(letter.body).idempotency_key, bad.idempotencyKey, "the letter carries the exact wire body");
    // max_retries = 0 on this queue: a message not acked would be gone; each was seen once and settled.
    const seen = s.bSeen.filter((m) => m.key === good.idempotencyKey || m.key === bad.idempotencyKey);
    assert.equal(seen.length, 2, JSON.stringify(seen));
    const reports = s.bReports.filter((r) => r.refused.some((x) => x.idempotencyKey === bad.idempotencyKey || x.code === "invalid_message"));
    assert.equal(reports.reduce((n, r) => n + r.deadLettered, 0), 2, JSON.stringify(s.bReports));
    assert.equal(s.bReports.reduce((n, r) => n + r.retried, 0), 0, "nothing retried (this queue would drop it)");
  }), { timeoutMs: 60_000 });

  test("the queue itself fails: the event stays in memory, is reported, and goes out on flush()", withDiagnostics(async () => {
    const customer = uid("cus_broken");
    await faults(mock.url, { clear: true, outage: true });
    const r = await call("/broken/track", { input: { customerId: customer, featureId: "messages", value: 5 } });
    assert.equal(r.result.status, "queued");
    assert.equal(r.result.queue, "memory", JSON.stringify(r.result));
    assert.match(r.result.message, /simulated: the queue is unavailable/);
    assert.equal(r.pending.queued, 1, "kept in memory");
    const key = r.result.idempotencyKey;
    let s = await call("/state");
    assert.ok(s.brokenEvents.some((e) => e.type === "queued" && e.storage === "memory" && /simulated/.test(e.message) && e.idempotencyKey === key), JSON.stringify(s.brokenEvents));

    // Still broken, Autumn still down: flush keeps it.
    const f1 = await call("/broken/flush", { queueBroken: true });
    // `handedOver` is reported when any (index.d.ts FlushResult): none here.
    assert.deepEqual({ remaining: f1.result.remaining, handedOver: f1.result.handedOver }, { remaining: 1, handedOver: undefined });
    // The queue works again: flush hands it over, the consumer delivers it once.
    await faults(mock.url, { clear: true });
    const f2 = await call("/broken/flush", { queueBroken: false });
    assert.equal(f2.result.handedOver, 1, JSON.stringify(f2));
    assert.equal(f2.pending.queued, 0);
    s = await until((s) => s.acks.some((a) => a.key === key), "the handed-over event acked");
    const evs = await mockEvents(mock.url, key);
    assert.equal(evs.length, 1);
    assert.equal(evs[0].value, 5);
  }), { timeoutMs: 60_000 });
});
